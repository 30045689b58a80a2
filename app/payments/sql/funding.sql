-- How a Monnify transfer becomes money in a wallet. Current definitions; see docs/architecture.md, "Where
-- SQL lives". Fees are computed by the caller (app/payments/events.py) and passed in.

-- monnify_credit: THE funding credit, for a stored event whose row the caller has locked (or just
-- inserted). Finds the customer by the reserved account's reference; none (or a zero amount) marks the event
-- `unmatched` for staff. Otherwise posts, under `monnify:<transactionReference>` (so a transfer is credited
-- once, whoever gets here first):
--   wallet +(amount - fee), funding-fee revenue +fee, Monnify's charge to its expense account,
--   Monnify clearing -(amount - charge), i.e. what Monnify will settle to us,
-- and marks the event `credited`. Raises when the customer has no wallet yet or the figures do not add up;
-- the caller's (sub-)transaction is then undone and the event retried.
CREATE OR REPLACE FUNCTION monnify_credit(
    p_event_id bigint,
    p_product_reference text,
    p_transaction_reference text,
    p_amount_paid bigint,
    p_fee bigint,
    p_monnify_charge bigint,
    OUT status text,
    OUT user_id uuid,
    OUT ledger_transaction_id bigint
) LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := now();
    v_wallet bigint;
    v_clearing bigint;
    v_fees bigint;
    v_charges bigint;
    v_ids bigint[];
    v_amounts bigint[];
BEGIN
    SELECT u.id, a.id INTO user_id, v_wallet
    FROM users u LEFT JOIN ledger_accounts a ON a.user_id = u.id AND a.kind = 'wallet'
    WHERE u.account_reference = p_product_reference;

    IF user_id IS NULL OR coalesce(p_amount_paid, 0) <= 0 THEN
        UPDATE monnify_events e
        SET status = 'unmatched', processed_at = v_now, updated_at = v_now,
            last_error = CASE WHEN monnify_credit.user_id IS NULL THEN 'no customer owns this account reference'
                              ELSE 'amount is zero' END
        WHERE e.id = p_event_id;
        status := 'unmatched';
        user_id := NULL;
        RETURN;
    END IF;
    IF v_wallet IS NULL THEN
        RAISE EXCEPTION 'customer % has no wallet account yet', user_id;
    END IF;
    IF p_fee < 0 OR p_fee > p_amount_paid OR p_monnify_charge < 0 OR p_monnify_charge > p_amount_paid THEN
        RAISE EXCEPTION 'incoherent fee % / charge % for amount %', p_fee, p_monnify_charge, p_amount_paid;
    END IF;

    SELECT max(a.id) FILTER (WHERE a.code = 'monnify_clearing'),
           max(a.id) FILTER (WHERE a.code = 'revenue:funding_fees'),
           max(a.id) FILTER (WHERE a.code = 'expense:monnify_fees')
    INTO v_clearing, v_fees, v_charges
    FROM ledger_accounts a
    WHERE a.code IN ('monnify_clearing', 'revenue:funding_fees', 'expense:monnify_fees');
    IF v_clearing IS NULL OR v_fees IS NULL OR v_charges IS NULL THEN
        RAISE EXCEPTION 'system ledger accounts are not opened yet';
    END IF;

    -- Zero legs left out, sorted by account (ledger_post's rule: wallet rows locked in one order).
    SELECT array_agg(leg.id ORDER BY leg.id), array_agg(leg.amount ORDER BY leg.id)
    INTO v_ids, v_amounts
    FROM (VALUES (v_wallet, p_amount_paid - p_fee),
                 (v_fees, p_fee),
                 (v_charges, -p_monnify_charge),
                 (v_clearing, -(p_amount_paid - p_monnify_charge))) AS leg(id, amount)
    WHERE leg.amount <> 0;

    SELECT post.tx_id INTO ledger_transaction_id
    FROM ledger_post('monnify:' || p_transaction_reference, 'funding',
                     left('Bank transfer ' || p_transaction_reference, 255),
                     'monnify_event', p_event_id::text, 'monnify-webhook', v_ids, v_amounts) AS post;

    UPDATE monnify_events e
    SET status = 'credited', user_id = monnify_credit.user_id, amount_paid_kobo = p_amount_paid,
        credited_kobo = p_amount_paid - p_fee, fee_kobo = p_fee,
        ledger_transaction_id = monnify_credit.ledger_transaction_id,
        processed_at = v_now, updated_at = v_now, attempts = e.attempts + 1, last_error = NULL
    WHERE e.id = p_event_id;
    status := 'credited';
END;
$$;

-- monnify_receive: a Monnify webhook stored and, when it can be, credited in ONE statement (the webhook's
-- hot path). The event is inserted once per dedupe key; a paid reserved-account transfer with verification
-- off is credited by monnify_credit in a sub-transaction, so a failed credit leaves the event stored
-- (`received`) for the worker, which credits it with the same monnify_credit.
CREATE OR REPLACE FUNCTION monnify_receive(
    p_dedupe_key text,
    p_event_type text,
    p_transaction_reference text,
    p_product_reference text,
    p_amount_paid bigint,
    p_payload jsonb,
    p_remote_ip text,
    p_status text,
    p_last_error text,
    p_credit boolean,
    p_fee bigint,
    p_monnify_charge bigint,
    OUT event_id bigint,
    OUT status text,
    OUT created boolean,
    OUT user_id uuid,
    OUT ledger_transaction_id bigint,
    OUT credit_error text
) LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := now();
BEGIN
    INSERT INTO monnify_events AS e
        (dedupe_key, event_type, transaction_reference, product_reference, amount_paid_kobo, payload,
         remote_ip, status, last_error, attempts, created_at, updated_at)
    VALUES (p_dedupe_key, p_event_type, p_transaction_reference, p_product_reference, p_amount_paid, p_payload,
            p_remote_ip, p_status, p_last_error, 0, v_now, v_now)
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING e.id, e.status INTO event_id, status;

    IF event_id IS NULL THEN
        SELECT e.id, e.status INTO event_id, status FROM monnify_events e WHERE e.dedupe_key = p_dedupe_key;
        created := false;
        RETURN;
    END IF;
    created := true;
    IF NOT p_credit THEN
        RETURN;
    END IF;

    BEGIN
        SELECT c.status, c.user_id, c.ledger_transaction_id INTO status, user_id, ledger_transaction_id
        FROM monnify_credit(event_id, p_product_reference, p_transaction_reference, p_amount_paid, p_fee,
                            p_monnify_charge) AS c;
    EXCEPTION WHEN OTHERS THEN
        -- Everything in this block is undone; the stored event stays `received` for another path.
        credit_error := SQLSTATE || ': ' || SQLERRM;
        user_id := NULL;
        ledger_transaction_id := NULL;
    END;
END;
$$;
