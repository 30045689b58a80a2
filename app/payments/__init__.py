"""Payments: Monnify client, webhook signatures and events, reserved accounts and wallet funding."""
