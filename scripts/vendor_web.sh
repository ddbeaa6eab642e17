#!/usr/bin/env bash
# Fetch the web app's third-party files from the npm registry into src/msclip/app/static/vendor/ (committed,
# so the app serves them itself: no CDN at run time). Rerun after changing a version below.
#   leaflet          map library (BSD-2-Clause)
#   topojson-client  TopoJSON -> GeoJSON in the browser (ISC)
#   world-atlas      Natural Earth 1:50m countries as TopoJSON (ISC; Natural Earth data is public domain)
set -euo pipefail
LEAFLET=1.9.4
TOPOJSON_CLIENT=3.1.0
WORLD_ATLAS=2.0.2

root="$(cd "$(dirname "$0")/.." && pwd)"
vendor="$root/src/msclip/app/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "leaflet@$LEAFLET" "topojson-client@$TOPOJSON_CLIENT" "world-atlas@$WORLD_ATLAS" >/dev/null
for name in leaflet topojson-client world-atlas; do
  mkdir -p "$name" && tar xzf "$name"-*.tgz -C "$name" --strip-components=1
done
rm -rf "$vendor" && mkdir -p "$vendor/leaflet/images" "$vendor/topojson-client" "$vendor/world-atlas"
cp leaflet/dist/leaflet.js leaflet/dist/leaflet.css leaflet/LICENSE "$vendor/leaflet/"
cp leaflet/dist/images/*.png "$vendor/leaflet/images/"
cp topojson-client/dist/topojson-client.min.js topojson-client/LICENSE "$vendor/topojson-client/"
cp world-atlas/countries-50m.json world-atlas/LICENSE "$vendor/world-atlas/"
cat > "$vendor/VERSIONS" <<END
leaflet $LEAFLET
topojson-client $TOPOJSON_CLIENT
world-atlas $WORLD_ATLAS (countries-50m.json: Natural Earth 1:50m admin-0 countries, public domain)
fetched by scripts/vendor_web.sh with npm pack from the npm registry
END
echo "vendored into $vendor:"; cat "$vendor/VERSIONS"
