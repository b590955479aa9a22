"""Files that belong to an image (masks, control images, captions), found by a name pattern.

Entry point: finding.py (the companion of one image); pattern.py is the pattern language,
text.py reads captions, pixels.py turns a companion image into IMAGE and MASK.
"""
