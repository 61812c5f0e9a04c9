"""Nearby deals: stores with live deals cached per district, a grid index each, exact distances."""
