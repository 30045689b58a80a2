-- How a Monnify transfer becomes money in a wallet. Current definitions; see docs/architecture.md, "Where
-- SQL lives". Fees are computed by the caller (app/payments/events.py) and passed in.

-- monnify_post_credit: THE funding credit rule, once, for monnify_credit (the webhook and the worker) and
-- monnify_assign (staff / CLI crediting an unmatched transfer). The caller has locked (or just inserted) the
-- event row and found the customer's wallet. Posts, under `monnify:<transactionReference>` (so a transfer is
-- credited once, whoever gets here first):
--   wallet +(amount - fee), funding-fee revenue +fee, Monnify's charge to its expense account,
--   Monnify clearing -(amount - charge), i.e. what Monnify will settle to us,
-- and marks the event `credited` to the customer. Raises when the figures do not add up or the system
-- accounts are missing; the caller's (sub-)transaction is then undone.
CREATE OR REPLACE FUNCTION monnify_post_credit(
    p_event_id bigint,
    p_user_id uuid,
    p_wallet bigint,
    p_transaction_reference text,
    p_amount_paid bigint,
    p_fee bigint,
    p_monnify_charge bigint,
    p_created_by text
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := now();
    v_clearing bigint;
    v_fees bigint;
    v_charges bigint;
    v_ids bigint[];
    v_amounts bigint[];
    v_tx bigint;
BEGIN
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
    FROM (VALUES (p_wallet, p_amount_paid - p_fee),
                 (v_fees, p_fee),
                 (v_charges, -p_monnify_charge),
                 (v_clearing, -(p_amount_paid - p_monnify_charge))) AS leg(id, amount)
    WHERE leg.amount <> 0;

    SELECT post.tx_id INTO v_tx
    FROM ledger_post('monnify:' || p_transaction_reference, 'funding',
                     left('Bank transfer ' || p_transaction_reference, 255),
                     'monnify_event', p_event_id::text, left(p_created_by, 64), v_ids, v_amounts) AS post;

    UPDATE monnify_events e
    SET status = 'credited', user_id = p_user_id, amount_paid_kobo = p_amount_paid,
        credited_kobo = p_amount_paid - p_fee, fee_kobo = p_fee, ledger_transaction_id = v_tx,
        processed_at = v_now, updated_at = v_now, attempts = e.attempts + 1, last_error = NULL
    WHERE e.id = p_event_id;
    RETURN v_tx;
END;
$$;

-- monnify_credit: the funding credit of a stored event whose row the caller has locked (or just inserted).
-- Finds the customer by the reserved account's reference; none (or a zero amount) marks the event
-- `unmatched` for staff. Otherwise monnify_post_credit posts it and marks it `credited`. Raises when the
-- customer has no wallet yet or the figures do not add up; the caller's (sub-)transaction is then undone and
-- the event retried.
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

    ledger_transaction_id := monnify_post_credit(p_event_id, user_id, v_wallet, p_transaction_reference,
                                                 p_amount_paid, p_fee, p_monnify_charge, 'monnify-webhook');
    status := 'credited';
END;
$$;

-- monnify_assign: an `unmatched` transfer credited by hand to a customer staff (or an operator's CLI) chose,
-- through the same monnify_post_credit and so under the same key `monnify:<transactionReference>` the webhook
-- would have used: it can never be credited twice, whatever is re-sent or retried later. Locks the event row;
-- only an unmatched paid SUCCESSFUL_TRANSACTION with a transaction reference is taken. Anything else changes
-- nothing and says why in `refused` (the event's status is returned as it is). Fees and Monnify's charge are
-- computed by the caller with the webhook's rule (app/payments/money.py) from the amount it gives here (the
-- stored one, or Monnify's when verification is on). Who assigned it and why are kept on the event.
CREATE OR REPLACE FUNCTION monnify_assign(
    p_event_id bigint,
    p_user_id uuid,
    p_amount_paid bigint,
    p_fee bigint,
    p_monnify_charge bigint,
    p_assigned_by_id uuid,
    p_assigned_by text,
    p_reason text,
    OUT status text,
    OUT refused text,
    OUT ledger_transaction_id bigint
) LANGUAGE plpgsql AS $$
DECLARE
    v_event monnify_events%ROWTYPE;
    v_wallet bigint;
BEGIN
    SELECT * INTO v_event FROM monnify_events e WHERE e.id = p_event_id FOR UPDATE;
    IF NOT FOUND THEN
        refused := 'no such event';
        RETURN;
    END IF;
    status := v_event.status;
    IF v_event.status <> 'unmatched' THEN
        refused := format('the event is %s, not unmatched', v_event.status);
        RETURN;
    ELSIF v_event.event_type <> 'SUCCESSFUL_TRANSACTION' OR v_event.transaction_reference IS NULL THEN
        refused := 'the event is not a transfer with a transaction reference';
        RETURN;
    ELSIF coalesce(p_amount_paid, 0) <= 0 THEN
        refused := 'the amount paid is zero';
        RETURN;
    ELSIF coalesce(btrim(p_reason), '') = '' THEN
        refused := 'a reason is required';
        RETURN;
    END IF;

    SELECT a.id INTO v_wallet FROM ledger_accounts a WHERE a.user_id = p_user_id AND a.kind = 'wallet';
    IF v_wallet IS NULL THEN
        refused := 'the customer has no wallet';
        RETURN;
    END IF;

    ledger_transaction_id := monnify_post_credit(p_event_id, p_user_id, v_wallet, v_event.transaction_reference,
                                                 p_amount_paid, p_fee, p_monnify_charge, p_assigned_by);
    UPDATE monnify_events e
    SET assigned_by_id = p_assigned_by_id, assigned_by = left(p_assigned_by, 254), assigned_at = now(),
        assignment_reason = left(p_reason, 500)
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
