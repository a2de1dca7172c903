"""Retail rules more than one service applies, pure (no I/O, no framework): each rule lives once.

`refunds`: what returning or cancelling units pays back; `geo`: distances between locations and
customers; `holds`: how long a click & reserve hold may last.
"""
