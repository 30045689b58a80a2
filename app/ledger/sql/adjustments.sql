-- Manual adjustments of a customer's wallet by finance staff (app/ledger/adjustments.py). Current definition;
-- see docs/architecture.md, "Where SQL lives".

-- adjustment_post: post a requested adjustment, exactly once. In ONE statement: the guarded transition
-- `pending_approval -> posted` (the row locked WHERE it is still pending: only one caller can win it,
-- however many approve at once) and the posting
-- under `adjustment:<id>` through ledger_post:
--   credit: wallet +amount, staff_adjustments -amount   (the platform gives the customer money)
--   debit:  wallet -amount, staff_adjustments +amount   (money goes back from the wallet)
-- p_approval: true for a second person's approval (refused when p_decided_by requested it); false for the
-- requester's own request within the no-approval limit (the caller, which owns that limit, says so; only the
-- requester may post it that way). When the transition does not apply, nothing changes and `applied` is false
-- with the row's `status` (the caller says why). A debit larger than the wallet raises LG001 (ledger_post);
-- the transition is undone with it.
CREATE OR REPLACE FUNCTION adjustment_post(
    p_adjustment_id uuid,
    p_decided_by uuid,
    p_decided_by_email text,
    p_note text,
    p_approval boolean,
    OUT applied boolean,
    OUT status text,
    OUT ledger_transaction_id bigint
) LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := now();
    v_user uuid;
    v_direction text;
    v_amount bigint;
    v_reason text;
    v_wallet bigint;
    v_other bigint;
    v_wallet_leg bigint;
BEGIN
    -- The guard: under READ COMMITTED a second approver waits for the first one's row lock, then re-checks
    -- the row as the first left it (posted) and finds nothing.
    SELECT a.user_id, a.direction, a.amount_kobo, a.reason INTO v_user, v_direction, v_amount, v_reason
    FROM adjustments a
    WHERE a.id = p_adjustment_id AND a.status = 'pending_approval'
      AND (CASE WHEN p_approval THEN a.requested_by_id IS DISTINCT FROM p_decided_by
                ELSE a.requested_by_id = p_decided_by END)
    FOR UPDATE;

    IF NOT FOUND THEN
        SELECT a.status INTO status FROM adjustments a WHERE a.id = p_adjustment_id;
        applied := false;
        RETURN;
    END IF;

    SELECT a.id INTO v_wallet FROM ledger_accounts a WHERE a.user_id = v_user AND a.kind = 'wallet';
    SELECT a.id INTO v_other FROM ledger_accounts a WHERE a.code = 'staff_adjustments';
    IF v_wallet IS NULL OR v_other IS NULL THEN
        RAISE EXCEPTION 'the wallet of % or the staff_adjustments account is not opened', v_user
            USING ERRCODE = 'LG003';
    END IF;
    v_wallet_leg := CASE WHEN v_direction = 'credit' THEN v_amount ELSE -v_amount END;

    SELECT post.tx_id INTO ledger_transaction_id
    FROM ledger_post('adjustment:' || p_adjustment_id::text, 'adjustment',
                     left('Adjustment: ' || v_reason, 255), 'adjustment', p_adjustment_id::text,
                     left('staff:' || coalesce(p_decided_by_email, '?'), 64),
                     CASE WHEN v_wallet < v_other THEN ARRAY[v_wallet, v_other] ELSE ARRAY[v_other, v_wallet] END,
                     CASE WHEN v_wallet < v_other THEN ARRAY[v_wallet_leg, -v_wallet_leg]
                          ELSE ARRAY[-v_wallet_leg, v_wallet_leg] END) AS post;

    UPDATE adjustments a
    SET status = 'posted', ledger_transaction_id = adjustment_post.ledger_transaction_id,
        decided_by_id = p_decided_by, decided_by = left(p_decided_by_email, 254), decided_at = v_now,
        decision_note = nullif(left(p_note, 500), ''), updated_at = v_now
    WHERE a.id = p_adjustment_id;
    applied := true;
    status := 'posted';
END;
$$;
