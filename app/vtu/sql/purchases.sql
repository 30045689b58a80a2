-- The purchase's money paths, each one statement (docs/architecture.md, "Purchase lifecycle"):
--   purchase_open: insert the purchase (pending, idempotency key), check the optional spend limit and the
--     buyer's KYC limits, and debit the wallet into purchases_in_flight through ledger_post, all or nothing;
--   purchase_deliver: the guarded pending -> successful transition and the delivery posting (in flight ->
--     provider float + commission revenue) together;
--   purchase_fail: the guarded pending -> failed transition and the refund (in flight -> wallet) together;
--   purchase_reverse: successful or pending -> reversed and the refund from wherever the money is;
--   purchase_attention_when_final: THE needs-attention rule of every transition to a final status.
-- Every transition is guarded by the status it moves from: when answers race (the /pay answer, a requery
-- job, a callback, a staff click), one matches the row and only that one posts money; the others get no
-- row back and nothing moves. Keys make each posting happen at most once per purchase: `purchase:<id>`,
-- `delivery:<id>`, `refund:<id>`. Legs go to ledger_post sorted by account id, zero legs left out.
-- Current definitions; see docs/architecture.md, "How to change a SQL function".

-- The needs-attention flag of a purchase that becomes final (successful, failed, reversed), from the flag
-- and reason it had and the staff alert of this answer (NULL: none): an alert (float low, credentials...)
-- raises the flag; a definite answer settles an "unknown after every requery" flag (a reason starting with
-- 'Unresolved:', written by app/vtu/transitions.py note_pending as UNRESOLVED); any other reason stays for
-- staff. The reason itself becomes coalesce(alert, reason) in each caller.
CREATE OR REPLACE FUNCTION purchase_attention_when_final(p_needs boolean, p_reason text, p_alert text)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_alert IS NOT NULL THEN true
                WHEN p_needs AND p_reason LIKE 'Unresolved:%' THEN false
                ELSE p_needs END
$$;

CREATE OR REPLACE FUNCTION purchase_open(
    p_id uuid,
    p_user_id uuid,
    p_channel text,
    p_service_id text,
    p_kind text,
    p_recipient text,
    p_phone text,
    p_variation_code text,
    p_subscription_type text,
    p_product_name text,
    p_customer_name text,
    p_amount bigint,
    p_face bigint,
    p_cost bigint,
    p_provider_slug text,
    p_request_id text,
    p_now timestamptz,
    p_next_requery_at timestamptz,
    p_api_key_id uuid,
    p_idempotency_key text,
    p_request_hash text,
    p_spend_limit bigint,
    p_spend_since timestamptz,
    p_actor text,
    p_kyc_single bigint[],
    p_kyc_daily bigint[],
    p_quantity integer,
    OUT created boolean,
    OUT wallet_id bigint,
    OUT in_flight_id bigint,
    OUT provider_float_id bigint,
    OUT revenue_id bigint
) LANGUAGE plpgsql AS $$
DECLARE
    v_spent bigint;
    v_suspended boolean;
    v_level smallint;
    v_single bigint;
    v_daily bigint;
BEGIN
    -- A suspended account opens no purchase, by any channel (app/accounts/suspension.py). FOR SHARE waits for
    -- a suspension being committed on this row and then reads it, and a suspension waits for purchases
    -- opening now: each purchase was opened before the suspension committed, or is refused.
    SELECT u.suspended_at IS NOT NULL, u.kyc_level INTO v_suspended, v_level
    FROM users u WHERE u.id = p_user_id FOR SHARE;
    IF v_suspended THEN
        RAISE EXCEPTION 'account % is suspended', p_user_id USING ERRCODE = 'VT002';
    END IF;

    INSERT INTO purchases AS p
        (id, user_id, channel, service_id, kind, recipient, phone, variation_code, subscription_type,
         product_name, customer_name, amount_kobo, face_amount_kobo, cost_kobo, status, needs_attention,
         provider_slug, request_id, attempts, next_requery_at, exchanges, paid_at, api_key_id,
         idempotency_key, request_hash, quantity, created_at, updated_at)
    VALUES (p_id, p_user_id, p_channel, p_service_id, p_kind, p_recipient, p_phone, p_variation_code,
            p_subscription_type, p_product_name, p_customer_name, p_amount, p_face, p_cost, 'pending', false,
            p_provider_slug, p_request_id, 0, p_next_requery_at, '[]'::jsonb, p_now, p_api_key_id,
            p_idempotency_key, p_request_hash, p_quantity, p_now, p_now)
    ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING true INTO created;

    IF created IS NULL THEN
        created := false;  -- a twin with this key got there first: nothing written, nothing moved
        RETURN;
    END IF;

    -- KYC limits (app/accounts/kyc.py, KYC_LIMITS): element level+1 of each array is the buyer's limit in kobo
    -- (0 or missing: none). Checked after the twin test, so a replayed idempotency key still gets its
    -- purchase; a refusal raises, which undoes this statement's insert: nothing is written.
    v_level := coalesce(v_level, 0);
    v_single := coalesce(p_kyc_single[v_level + 1], 0);
    v_daily := coalesce(p_kyc_daily[v_level + 1], 0);
    IF v_single > 0 AND p_amount > v_single THEN
        RAISE EXCEPTION 'single purchase limit of % kobo at KYC level %', v_single, v_level
            USING ERRCODE = 'VT003', DETAIL = format('level=%s limit=%s amount=%s', v_level, v_single, p_amount);
    END IF;

    IF coalesce(p_spend_limit, 0) > 0 THEN
        PERFORM pg_advisory_xact_lock(hashtextextended(p_channel || '-spend:' || p_user_id::text, 0));
        SELECT coalesce(sum(p.amount_kobo), 0) INTO v_spent
        FROM purchases p
        WHERE p.user_id = p_user_id AND p.channel = p_channel AND p.created_at >= p_spend_since
          AND p.status IN ('pending', 'successful');
        IF v_spent > p_spend_limit THEN
            RAISE EXCEPTION 'daily spend limit of % kobo reached', p_spend_limit
                USING ERRCODE = 'VT001', DETAIL = format('limit=%s spent=%s', p_spend_limit, v_spent);
        END IF;
    END IF;

    -- The KYC daily limit counts every channel since midnight in Lagos, this purchase included, under one lock
    -- per buyer (taken after the channel's own lock, always in this order): racing purchases queue here and
    -- each sees the ones committed before it, so together they never pass the limit.
    IF v_daily > 0 THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('kyc-spend:' || p_user_id::text, 0));
        SELECT coalesce(sum(p.amount_kobo), 0) INTO v_spent
        FROM purchases p
        WHERE p.user_id = p_user_id
          AND p.created_at >= (date_trunc('day', p_now AT TIME ZONE 'Africa/Lagos') AT TIME ZONE 'Africa/Lagos')
          AND p.status IN ('pending', 'successful');
        IF v_spent > v_daily THEN
            RAISE EXCEPTION 'daily limit of % kobo at KYC level %', v_daily, v_level
                USING ERRCODE = 'VT004', DETAIL = format('level=%s limit=%s spent=%s', v_level, v_daily, v_spent);
        END IF;
    END IF;

    SELECT a.id INTO wallet_id FROM ledger_accounts a WHERE a.user_id = p_user_id AND a.kind = 'wallet';
    -- The other accounts the purchase may touch later (delivery, refund), for the caller to reuse;
    -- a provider float not opened yet is NULL here and opened by the application on first delivery.
    SELECT max(a.id) FILTER (WHERE a.code = 'purchases_in_flight'),
           max(a.id) FILTER (WHERE a.code = 'provider_float:' || p_provider_slug),
           max(a.id) FILTER (WHERE a.code = 'revenue:commission')
    INTO in_flight_id, provider_float_id, revenue_id
    FROM ledger_accounts a
    WHERE a.code IN ('purchases_in_flight', 'provider_float:' || p_provider_slug, 'revenue:commission');
    IF wallet_id IS NULL OR in_flight_id IS NULL THEN
        RAISE EXCEPTION 'no ledger account % for this purchase',
            CASE WHEN wallet_id IS NULL THEN 'wallet of ' || p_user_id::text ELSE 'purchases_in_flight' END
            USING ERRCODE = 'LG003';
    END IF;

    -- wallet -> purchases in flight (app.vtu.postings), in account-id order (ledger_post's locking order).
    IF wallet_id < in_flight_id THEN
        PERFORM ledger_post('purchase:' || p_id::text, 'purchase', 'Purchase', 'purchase',
            p_id::text, p_actor, ARRAY[wallet_id, in_flight_id], ARRAY[-p_amount, p_amount]);
    ELSE
        PERFORM ledger_post('purchase:' || p_id::text, 'purchase', 'Purchase', 'purchase',
            p_id::text, p_actor, ARRAY[in_flight_id, wallet_id], ARRAY[p_amount, -p_amount]);
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION purchase_deliver(
    p_id uuid,
    p_exchange jsonb,
    p_now timestamptz,
    p_message text,
    p_code text,
    p_reference text,
    p_token text,
    p_units text,
    p_alert text,
    p_in_flight_id bigint,
    p_float_id bigint,
    p_revenue_id bigint,
    p_pins text DEFAULT NULL  -- exam PINs, already encrypted by the application (app/vtu/exam.py)
) RETURNS SETOF purchases LANGUAGE plpgsql AS $$
DECLARE
    r purchases;
    v_ids bigint[];
    v_amounts bigint[];
BEGIN
    UPDATE purchases p
    SET exchanges = p.exchanges || p_exchange,
        updated_at = p_now,
        provider_message = coalesce(p_message, p.provider_message),
        provider_code = coalesce(p_code, p.provider_code),
        provider_reference = coalesce(p_reference, p.provider_reference),
        pins_ciphertext = coalesce(p_pins, p.pins_ciphertext),
        status = 'successful',
        completed_at = coalesce(p.completed_at, p_now),
        next_requery_at = NULL,
        token = coalesce(p_token, p.token),
        units = coalesce(p_units, p.units),
        needs_attention = purchase_attention_when_final(p.needs_attention, p.attention_reason, p_alert),
        attention_reason = coalesce(p_alert, p.attention_reason)
    WHERE p.id = p_id AND p.status = 'pending'
    RETURNING p.* INTO r;
    IF NOT FOUND THEN
        RETURN;  -- not pending any more: another answer won; nothing moves
    END IF;

    SELECT array_agg(leg.id ORDER BY leg.id), array_agg(leg.amount ORDER BY leg.id)
    INTO v_ids, v_amounts
    FROM (VALUES (p_in_flight_id, -r.amount_kobo),
                 (p_float_id, r.cost_kobo),
                 (p_revenue_id, r.amount_kobo - r.cost_kobo)) AS leg(id, amount)
    WHERE leg.amount <> 0;
    PERFORM ledger_post('delivery:' || p_id::text, 'purchase_delivery', 'Purchase delivered', 'purchase',
                        p_id::text, 'system', v_ids, v_amounts);
    RETURN NEXT r;
END;
$$;

-- pending -> failed (a definite failure, or staff resolving it as not delivered) and the refund `refund:<id>`
-- of the whole price from purchases_in_flight back to the wallet, memo 'Refund: <message>'. Returns the
-- failed purchase, or no row when it was not pending (nothing moves then).
CREATE OR REPLACE FUNCTION purchase_fail(
    p_id uuid,
    p_exchange jsonb,
    p_now timestamptz,
    p_message text,
    p_code text,
    p_reference text,
    p_token text,
    p_units text,
    p_alert text,
    p_wallet_id bigint,
    p_in_flight_id bigint
) RETURNS SETOF purchases LANGUAGE plpgsql AS $$
DECLARE
    r purchases;
    v_ids bigint[];
    v_amounts bigint[];
BEGIN
    UPDATE purchases p
    SET exchanges = p.exchanges || p_exchange,
        updated_at = p_now,
        provider_message = coalesce(p_message, p.provider_message),
        provider_code = coalesce(p_code, p.provider_code),
        provider_reference = coalesce(p_reference, p.provider_reference),
        status = 'failed',
        completed_at = coalesce(p.completed_at, p_now),
        next_requery_at = NULL,
        token = coalesce(p_token, p.token),
        units = coalesce(p_units, p.units),
        needs_attention = purchase_attention_when_final(p.needs_attention, p.attention_reason, p_alert),
        attention_reason = coalesce(p_alert, p.attention_reason)
    WHERE p.id = p_id AND p.status = 'pending'
    RETURNING p.* INTO r;
    IF NOT FOUND THEN
        RETURN;  -- not pending any more: another answer won; nothing moves
    END IF;

    SELECT array_agg(leg.id ORDER BY leg.id), array_agg(leg.amount ORDER BY leg.id)
    INTO v_ids, v_amounts
    FROM (VALUES (p_in_flight_id, -r.amount_kobo),
                 (p_wallet_id, r.amount_kobo)) AS leg(id, amount)
    WHERE leg.amount <> 0;
    PERFORM ledger_post('refund:' || p_id::text, 'purchase_refund',
                        left('Refund: ' || coalesce(p_message, ''), 255), 'purchase', p_id::text, 'system',
                        v_ids, v_amounts);
    RETURN NEXT r;
END;
$$;

-- -> reversed (the provider delivered, then undid it) and the refund `refund:<id>`, memo 'Reversed by
-- provider: <message>': from successful the delivery split is undone (provider float -cost, commission
-- revenue cost - amount, wallet +amount); from pending (the delivery was never seen) the price is still in
-- flight (in flight -> wallet). The row is locked first, so the status it had is the one the refund
-- follows. Returns the status it left (`previous_status`: the caller's PurchaseSettled event says it) and
-- the reversed purchase, or no row when it was neither successful nor pending (nothing moves then).
CREATE OR REPLACE FUNCTION purchase_reverse(
    p_id uuid,
    p_exchange jsonb,
    p_now timestamptz,
    p_message text,
    p_code text,
    p_reference text,
    p_token text,
    p_units text,
    p_alert text,
    p_wallet_id bigint,
    p_in_flight_id bigint,
    p_float_id bigint,
    p_revenue_id bigint
) RETURNS TABLE (previous_status text, purchase purchases) LANGUAGE plpgsql AS $$
DECLARE
    r purchases;
    v_ids bigint[];
    v_amounts bigint[];
BEGIN
    SELECT p.status INTO previous_status
    FROM purchases p WHERE p.id = p_id AND p.status IN ('successful', 'pending')
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;  -- already failed or reversed: nothing moves
    END IF;

    UPDATE purchases p
    SET exchanges = p.exchanges || p_exchange,
        updated_at = p_now,
        provider_message = coalesce(p_message, p.provider_message),
        provider_code = coalesce(p_code, p.provider_code),
        provider_reference = coalesce(p_reference, p.provider_reference),
        status = 'reversed',
        completed_at = coalesce(p.completed_at, p_now),
        next_requery_at = NULL,
        token = coalesce(p_token, p.token),
        units = coalesce(p_units, p.units),
        needs_attention = purchase_attention_when_final(p.needs_attention, p.attention_reason, p_alert),
        attention_reason = coalesce(p_alert, p.attention_reason)
    WHERE p.id = p_id AND p.status = previous_status
    RETURNING p.* INTO r;

    IF previous_status = 'successful' THEN
        SELECT array_agg(leg.id ORDER BY leg.id), array_agg(leg.amount ORDER BY leg.id)
        INTO v_ids, v_amounts
        FROM (VALUES (p_float_id, -r.cost_kobo),
                     (p_revenue_id, r.cost_kobo - r.amount_kobo),
                     (p_wallet_id, r.amount_kobo)) AS leg(id, amount)
        WHERE leg.amount <> 0;
    ELSE
        SELECT array_agg(leg.id ORDER BY leg.id), array_agg(leg.amount ORDER BY leg.id)
        INTO v_ids, v_amounts
        FROM (VALUES (p_in_flight_id, -r.amount_kobo),
                     (p_wallet_id, r.amount_kobo)) AS leg(id, amount)
        WHERE leg.amount <> 0;
    END IF;
    PERFORM ledger_post('refund:' || p_id::text, 'purchase_refund',
                        left('Reversed by provider: ' || coalesce(p_message, ''), 255), 'purchase',
                        p_id::text, 'system', v_ids, v_amounts);
    purchase := r;
    RETURN NEXT;
END;
$$;
