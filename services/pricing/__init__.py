"""Pricing: the price book, promotions and quotes; one engine prices a cart for every channel."""
