"""Captioning pipeline: Overture Maps tags + a vision-language model -> captions for Sentinel-2 chips."""
