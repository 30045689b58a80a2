"""One-level referral bonuses: paid through the ledger, exactly once, inside the events that earn them."""
