"""Staff console latency at volume: every console page at 1,000,000 purchases / 200,000 users vs the same
pages on an (almost) empty database.

    uv run just bench console [--requests 60] [--concurrency 4] [--reseed] [--pages NAME,...]

1. Seed, once, the database `vtu_bench_console` on the benchmarks' PostgreSQL server (DATABASE_URL's, else
   the embedded one), migrated by the project's own `vtu database upgrade` (run again on every start, so
   new migrations, e.g. indexes, reach the seed): 200,000 users (about 5,000 referred), their wallets
   (`ledger_open_wallet`), 1,000,000 purchases over 90 days (~93% successful, 5% failed, 1% reversed,
   a few hundred pending, ~0.1% flagged; airtime / data on four networks, electricity, cable; web and
   api), 300,000 Monnify events (mostly credited; some unmatched, failed, rejected, ignored, received).
   Money reaches the ledger only through `ledger_post`, called from set-based SQL in batches: every
   credited event's funding posting, and the purchase postings (purchase, delivery, refund) of the
   purchases the buyer's funding covers, oldest first, up to `--ledger-purchases` of them (default
   300,000 of the 1,000,000: the rest have purchase rows without ledger transactions, said in the output).
   A row in `bench_seed` marks the seed done; later runs reuse it (`--reseed` rebuilds it).
2. The real app (`vtu run`) against it; a staff admin logs in; each page in PAGES is warmed up, then
   requested `--requests` times one after another (p50 / p99), then all pages by `--concurrency` clients
   at once for a few seconds (p50 / p99 over all pages).
3. The anchor: the same pages, the same way, on a freshly migrated database holding a handful of rows
   (so the detail pages exist), in the same run.
The last line: the worst p99 at volume (and its page) beside the worst p99 on the empty database, their
ratio, and the target (p99 < 150 ms per page on this machine).

To add a page: one entry in PAGES (a name and a path, or a function of the sample values found in the
database being measured, see `Samples`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlparse

from bench.common import (
    ROOT,
    RawHttpPool,
    Server,
    app_server,
    percentile,
    run_workers,
    server,
    throwaway_database,
)

SEED_DATABASE = "vtu_bench_console"
SEED_VERSION = 1  # bump when the seed's shape changes: existing seeds are rebuilt
TARGET_P99_MS = 150.0
STAFF_EMAIL = "bench-admin@example.ng"
STAFF_PASSWORD = "bench-Admin-password-1"


@dataclass(frozen=True, slots=True)
class Volume:
    users: int
    purchases: int
    events: int
    days: int = 90
    ledger_events: int = 30_000
    ledger_purchases: int = 20_000

    def label(self) -> str:
        return f"{self.purchases:,} purchases / {self.users:,} users / {self.events:,} events"

    def marker(self) -> str:
        return f"{self.label()}; ledger: {self.ledger_events:,} events, {self.ledger_purchases:,} purchases"


FULL = Volume(users=200_000, purchases=1_000_000, events=300_000)
EMPTY = Volume(users=20, purchases=60, events=20, days=2, ledger_events=20, ledger_purchases=60)


@dataclass(frozen=True, slots=True)
class Samples:
    """Values the pages' paths are built from, looked up in the database being measured."""

    purchase_id: str
    request_id: str
    phone: str  # a recipient phone of a purchase
    email_fragment: str  # part of a buyer's e-mail
    email: str  # a whole customer e-mail (customer look-up)
    user_phone: str  # that customer's phone
    user_id: str  # that customer's id (an early customer: one of the few who buy a lot)
    account_reference: str  # that customer's account reference
    cursor: str  # `before` deep in the purchase list (about half-way back)
    event_id: str
    transaction_reference: str
    amount_naira: str  # what that event paid, e.g. "5000"


# The pages measured, in order: (name, path or a function of the samples). One line per page.
PAGES: list[tuple[str, str | Callable[[Samples], str]]] = [
    ("overview", "/staff/"),
    ("overview live", "/staff/live"),
    ("purchases", "/staff/purchases"),
    ("purchases pending", "/staff/purchases?status=pending"),
    ("purchases attention", "/staff/purchases?attention=1"),
    ("purchases q=email part", lambda s: f"/staff/purchases?q={quote(s.email_fragment)}"),
    ("purchases q=phone", lambda s: f"/staff/purchases?q={quote(s.phone)}"),
    ("purchases q=request_id", lambda s: f"/staff/purchases?q={quote(s.request_id)}"),
    ("purchases q=user id", lambda s: f"/staff/purchases?q={s.user_id}"),
    ("purchases before=deep", lambda s: f"/staff/purchases?before={s.cursor}"),
    ("purchases service=mtn", "/staff/purchases?service=mtn"),
    ("purchase detail", lambda s: f"/staff/purchases/{s.purchase_id}"),
    ("purchase counts", "/staff/purchases/counts"),
    ("purchases open", "/staff/purchases/open"),
    ("funding", "/staff/funding"),
    ("funding q=txn ref", lambda s: f"/staff/funding?q={quote(s.transaction_reference)}"),
    ("funding q=email part", lambda s: f"/staff/funding?q={quote(s.email_fragment)}"),
    ("funding q=phone", lambda s: f"/staff/funding?q={quote(s.user_phone)}"),
    ("funding q=amount", lambda s: f"/staff/funding?q={s.amount_naira}"),
    ("funding status=unmatched", "/staff/funding?status=unmatched"),
    ("funding counts", "/staff/funding/counts"),
    ("funding open", "/staff/funding/open"),
    ("funding event", lambda s: f"/staff/funding/{s.event_id}"),
    ("funding customer", lambda s: f"/staff/funding/customer?q={quote(s.email)}"),
    ("funding unmatched", "/staff/funding/unmatched"),
    ("users", "/staff/users"),
    ("users q=email part", lambda s: f"/staff/users?q={quote(s.email_fragment)}"),
    ("users q=phone", lambda s: f"/staff/users?q={quote(s.user_phone)}"),
    ("users q=account ref", lambda s: f"/staff/users?q={quote(s.account_reference)}"),
    ("users q=purchase ref", lambda s: f"/staff/users?q={quote(s.request_id)}"),
    ("user profile", lambda s: f"/staff/users/{s.user_id}"),
    ("audit", "/staff/audit"),
    ("audit action=purchase.", "/staff/audit?action=purchase."),
    ("adjustments", "/staff/adjustments"),
]


# -- the seed -------------------------------------------------------------------------------------------
# Set-based SQL, each step its own transaction. :users, :purchases, :events, :days are substituted.
_HELPERS = """
CREATE OR REPLACE FUNCTION pg_temp.uuid7(ts timestamptz) RETURNS uuid LANGUAGE sql VOLATILE AS $$
    SELECT encode(
        set_byte(
            overlay(uuid_send(gen_random_uuid())
                    placing substring(int8send((extract(epoch FROM ts) * 1000)::bigint) FROM 3) FROM 1 FOR 6),
            6, (get_byte(uuid_send(gen_random_uuid()), 6) & 15) | 112),
        'hex')::uuid
$$;
"""

_USERS = """
INSERT INTO users (id, email, phone, full_name, password_hash, tier, account_reference, referral_code,
                   email_verified_at, created_at, updated_at)
SELECT pg_temp.uuid7(t), 'user' || g || '.' || (ARRAY['ade','chi','bola','emeka','ngozi','tunde'])[1 + g % 6]
           || '@' || (ARRAY['gmail.com','yahoo.com','outlook.com','hotmail.com','example.ng'])[1 + g % 5],
       (ARRAY['080','081','070','090','091'])[1 + g % 5] || lpad(g::text, 8, '0'),
       'Customer ' || g, 'not-a-password-hash', CASE WHEN g % 50 = 0 THEN 'reseller' ELSE 'customer' END,
       'VTU' || lpad(g::text, 10, '0'), 'R' || lpad(g::text, 9, '0'), t, t, t
FROM (SELECT g, CASE WHEN g > :users - greatest(:users / 100, 1) THEN now() - random() * interval '23 hours'
                     ELSE now() - interval '730 days' + (g::float / :users) * interval '700 days' END AS t
      FROM generate_series(1, :users) g) s
"""

_NUMBERED = """
CREATE TABLE bench_users AS
SELECT row_number() OVER (ORDER BY created_at, id)::int AS n, id, phone, account_reference, created_at
FROM users WHERE NOT is_staff;
ALTER TABLE bench_users ADD PRIMARY KEY (n);
"""

# About 2.5% of users were referred by an earlier user (the referrals row opens by trigger).
_REFERRALS = """
UPDATE users u SET referred_by_id = r.id
FROM bench_users b JOIN bench_users r ON r.n = greatest(1, b.n / 7)
WHERE u.id = b.id AND b.n % 40 = 0 AND r.n < b.n
"""

_WALLETS = "SELECT count(ledger_open_wallet(id)) FROM bench_users"

# Every customer's Monnify reservation (99% active with two banks; some failed or still pending).
_RESERVED = """
INSERT INTO reserved_accounts (id, user_id, account_reference, account_name, reservation_reference, status,
                               attempts, last_error, created_at, updated_at)
SELECT pg_temp.uuid7(created_at), id, account_reference, 'VTU-Customer ' || n,
    CASE WHEN n % 200 > 1 THEN 'MNFY-RES-' || n END,
    CASE WHEN n % 200 = 0 THEN 'failed' WHEN n % 200 = 1 THEN 'pending' ELSE 'active' END,
    1, CASE WHEN n % 200 = 0 THEN 'Monnify answered 503' END, created_at, created_at
FROM bench_users;
INSERT INTO reserved_bank_accounts (id, reservation_id, bank_code, bank_name, account_number, created_at,
                                    updated_at)
SELECT gen_random_uuid(), r.id, bank.code, bank.name, bank.prefix || lpad(b.n::text, 9, '0'), r.created_at,
    r.created_at
FROM reserved_accounts r JOIN bench_users b ON b.id = r.user_id
CROSS JOIN (VALUES ('035', 'Wema bank', '5'), ('232', 'Sterling bank', '8')) bank(code, name, prefix)
WHERE r.status = 'active';
"""

_SERVICES = """
CREATE TABLE bench_services (k int PRIMARY KEY, service_id text, kind text, lo int, hi int, name text);
INSERT INTO bench_services VALUES
 (0,'mtn','airtime',100,5000,'MTN Airtime'), (1,'glo','airtime',100,3000,'Glo Airtime'),
 (2,'airtel','airtime',100,3000,'Airtel Airtime'), (3,'etisalat','airtime',100,2000,'9mobile Airtime'),
 (4,'mtn-data','data',300,10000,'MTN Data'), (5,'glo-data','data',300,8000,'Glo Data'),
 (6,'airtel-data','data',300,8000,'Airtel Data'), (7,'etisalat-data','data',300,5000,'9mobile Data'),
 (8,'ikeja-electric','electricity',1000,50000,'Ikeja Electric Prepaid'),
 (9,'eko-electric','electricity',1000,50000,'Eko Electric Prepaid'),
 (10,'dstv','cable',2000,29000,'DStv Compact'), (11,'gotv','cable',1500,9000,'GOtv Max');
"""

# Service picked by weight: airtime 48%, data 37%, electricity 10%, cable 5%.
_PURCHASES = """
INSERT INTO purchases (id, user_id, channel, service_id, kind, recipient, phone, variation_code, product_name,
    amount_kobo, face_amount_kobo, cost_kobo, status, needs_attention, attention_reason, provider_slug,
    request_id, provider_reference, provider_code, provider_message, token, attempts, next_requery_at,
    exchanges, paid_at, completed_at, created_at, updated_at)
SELECT pg_temp.uuid7(x.t), x.user_id, x.channel, s.service_id, s.kind, x.recipient, x.phone,
    CASE WHEN s.kind IN ('data', 'cable') THEN s.service_id || '-' || (x.r3 * 10)::int END,
    s.name || ' N' || x.naira, x.naira * 100, x.naira * 100, x.naira * 97, x.status,
    x.flag, CASE WHEN x.flag THEN 'Provider says not delivered after we settled (bench seed)' END,
    'vtpass', x.request_id,
    CASE WHEN x.status <> 'pending' THEN '17' || lpad(x.g::text, 15, '0') END,
    CASE x.status WHEN 'pending' THEN '099' WHEN 'failed' THEN '016' ELSE '000' END,
    CASE x.status WHEN 'pending' THEN 'TRANSACTION PROCESSING' WHEN 'failed' THEN 'TRANSACTION FAILED'
         WHEN 'reversed' THEN 'TRANSACTION REVERSED' ELSE 'TRANSACTION SUCCESSFUL' END,
    CASE WHEN s.kind = 'electricity' AND x.status = 'successful'
         THEN '2164-0539-' || lpad((x.g % 100000000)::text, 8, '0') END,
    CASE WHEN x.status = 'pending' THEN 1 ELSE 0 END,
    CASE WHEN x.status = 'pending' THEN x.t + interval '5 minutes' END,
    jsonb_build_array(jsonb_build_object(
        'at', x.t, 'op', 'pay', 'request', jsonb_build_object('request_id', x.request_id,
        'serviceID', s.service_id, 'amount', x.naira, 'phone', x.recipient),
        'response', jsonb_build_object('code', CASE x.status WHEN 'failed' THEN '016' ELSE '000' END,
        'response_description', 'TRANSACTION SUCCESSFUL', 'requestId', x.request_id,
        'content', jsonb_build_object('transactions', jsonb_build_object('status',
            CASE x.status WHEN 'failed' THEN 'failed' WHEN 'pending' THEN 'pending' ELSE 'delivered' END,
            'product_name', s.name, 'unique_element', x.recipient, 'unit_price', x.naira,
            'commission', round(x.naira * 0.03, 2), 'transactionId', '17' || lpad(x.g::text, 15, '0')))))),
    x.t, CASE WHEN x.status <> 'pending' THEN x.t + interval '3 seconds' END, x.t,
    CASE WHEN x.status <> 'pending' THEN x.t + interval '3 seconds' ELSE x.t END
FROM (
    SELECT g, b.id AS user_id, t, r3,
        CASE WHEN r2 < 0.8 THEN 'web' ELSE 'api' END AS channel,
        CASE WHEN k < 8 THEN '080' || lpad(((g * 7919) % 100000000)::text, 8, '0')
             WHEN k < 10 THEN lpad(((g * 104729) % 100000000000)::text, 11, '4')
             ELSE lpad(((g * 15485863) % 10000000000)::text, 10, '7') END AS recipient,
        b.phone, k, request_id, status, naira,
        (status <> 'pending' AND r4 < 0.001) OR (status = 'pending' AND r4 < 0.3) AS flag
    FROM (
        SELECT g, random() AS r2, random() AS r3, random() AS r4,
            greatest(1, least(:n_users, (:n_users * random() ^ 2)::int)) AS n,
            CASE WHEN ks < 0.22 THEN 0 WHEN ks < 0.30 THEN 1 WHEN ks < 0.42 THEN 2 WHEN ks < 0.48 THEN 3
                 WHEN ks < 0.65 THEN 4 WHEN ks < 0.73 THEN 5 WHEN ks < 0.81 THEN 6 WHEN ks < 0.85 THEN 7
                 WHEN ks < 0.90 THEN 8 WHEN ks < 0.95 THEN 9 WHEN ks < 0.98 THEN 10 ELSE 11 END AS k,
            CASE WHEN g > :purchases - :pending THEN 'pending'
                 WHEN rs < 0.93 THEN 'successful' WHEN rs < 0.98 THEN 'failed' WHEN rs < 0.99 THEN 'reversed'
                 ELSE 'successful' END AS status,
            to_char(now(), 'YYYYMMDDHH24MI') || 'B' || lpad(g::text, 9, '0') || substr(md5(g::text), 1, 8)
                AS request_id,
            rn
        FROM (SELECT g::bigint AS g, random() AS ks, random() AS rs, random() AS rn
              FROM generate_series(1, :purchases) g) q
    ) a
    JOIN bench_users b ON b.n = a.n
    CROSS JOIN LATERAL (SELECT CASE WHEN a.status = 'pending'
                                    THEN now() - random() * interval '3 hours'
                                    ELSE greatest(b.created_at, now() - :days * interval '1 day')
                                         + random() * (now() - greatest(b.created_at,
                                                                        now() - :days * interval '1 day'))
                               END AS t) tt
    CROSS JOIN LATERAL (SELECT (sv.lo + (sv.hi - sv.lo) * a.rn ^ 3)::int / 50 * 50 + 50 AS naira
                        FROM bench_services sv WHERE sv.k = a.k) am
) x
JOIN bench_services s ON s.k = x.k
"""

# Events: mostly paid bank transfers into a customer's reserved account, by the same skewed customers;
# the amounts are set afterwards so that each customer's transfers cover ~115% of their purchases.
_EVENTS = """
INSERT INTO monnify_events (dedupe_key, event_type, transaction_reference, product_reference, payload,
    remote_ip, status, user_id, amount_paid_kobo, credited_kobo, fee_kobo, attempts, last_error,
    next_attempt_at, processed_at, created_at, updated_at)
SELECT e.event_type || ':' || e.ref, e.event_type, e.ref, e.product_reference,
    jsonb_build_object('eventType', e.event_type, 'eventData', jsonb_build_object(
        'transactionReference', e.ref, 'paymentReference', 'MNFY|PAY|' || e.g, 'amountPaid', e.naira,
        'totalPayable', e.naira, 'paidOn', e.t, 'paymentStatus', 'PAID', 'paymentMethod', 'ACCOUNT_TRANSFER',
        'currency', 'NGN', 'settlementAmount', e.naira - least(e.naira / 100, 2000),
        'product', jsonb_build_object('type', 'RESERVED_ACCOUNT', 'reference', e.product_reference),
        'destinationAccountInformation', jsonb_build_object('bankCode', '035', 'bankName', 'Wema bank',
            'accountNumber', lpad((e.g * 7)::text, 10, '5')),
        'paymentSourceInformation', jsonb_build_array(jsonb_build_object('bankCode', '058',
            'accountName', 'SENDER ' || e.g, 'accountNumber', lpad(e.g::text, 10, '0'),
            'amountPaid', e.naira)),
        'customer', jsonb_build_object('name', 'Customer', 'email', 'customer@example.ng'))),
    '35.242.133.146', e.status, CASE WHEN e.status = 'credited' THEN e.user_id END,
    e.naira * 100, CASE WHEN e.status = 'credited' THEN e.naira * 100 END,
    CASE WHEN e.status = 'credited' THEN 0 END,
    CASE WHEN e.status IN ('received') THEN 0 ELSE 1 END,
    CASE e.status WHEN 'failed' THEN 'ConnectionError: Monnify verification timed out'
                  WHEN 'unmatched' THEN 'no customer owns this account reference' END,
    CASE WHEN e.status = 'failed' THEN e.t + interval '10 minutes' END,
    CASE WHEN e.status NOT IN ('received', 'failed') THEN e.t + interval '1 second' END,
    e.t, e.t
FROM (
    SELECT g, 'MNFY|' || to_char(t, 'YYYYMMDD') || '|' || lpad(g::text, 10, '0') AS ref, t, status,
        CASE WHEN status = 'ignored' THEN 'SETTLEMENT' ELSE 'SUCCESSFUL_TRANSACTION' END AS event_type,
        CASE WHEN status = 'unmatched' THEN 'UNKNOWN' || g ELSE b.account_reference END AS product_reference,
        b.id AS user_id, (500 + 49500 * random() ^ 3)::int / 100 * 100 AS naira
    FROM (
        SELECT g, greatest(1, least(:n_users, (:n_users * random() ^ 2)::int)) AS n,
            CASE WHEN g > :events - :stuck THEN 'received'
                 WHEN rs < 0.95 THEN 'credited' WHEN rs < 0.97 THEN 'unmatched' WHEN rs < 0.98 THEN 'failed'
                 WHEN rs < 0.985 THEN 'rejected' ELSE 'ignored' END AS status,
            now() - random() * :days * interval '1 day' AS t
        FROM (SELECT g::bigint AS g, random() AS rs FROM generate_series(1, :events) g) q
    ) a JOIN bench_users b ON b.n = a.n
) e
"""

# Each customer's credited transfers split ~115% of what they bought (at least N500 each, whole naira).
_EVENT_AMOUNTS = """
WITH bought AS (SELECT user_id, sum(amount_kobo) AS total FROM purchases GROUP BY user_id),
     paid AS (SELECT user_id, count(*) AS n FROM monnify_events WHERE status = 'credited' GROUP BY user_id)
UPDATE monnify_events e
SET amount_paid_kobo = greatest(50000, (b.total * 1.15 / p.n)::bigint / 100 * 100 + 10000),
    credited_kobo = greatest(50000, (b.total * 1.15 / p.n)::bigint / 100 * 100 + 10000)
FROM bought b JOIN paid p USING (user_id)
WHERE e.user_id = b.user_id AND e.status = 'credited'
"""

# One funding posting per credited event (the legs monnify_credit posts: wallet + credited, Monnify's
# charge as our expense, clearing - the rest), through ledger_post, a batch of ids per call.
_FUNDING_POSTINGS = """
WITH acc AS (
    SELECT max(id) FILTER (WHERE code = 'monnify_clearing') AS clearing,
           max(id) FILTER (WHERE code = 'expense:monnify_fees') AS charges
    FROM ledger_accounts WHERE kind = 'system'),
legs AS (
    SELECT e.id, e.transaction_reference, w.id AS wallet, acc.clearing, acc.charges, e.credited_kobo AS paid,
        least(e.credited_kobo / 100, 200000) AS charge
    FROM monnify_events e JOIN ledger_accounts w ON w.user_id = e.user_id AND w.kind = 'wallet', acc
    WHERE e.status = 'credited' AND e.ledger_transaction_id IS NULL AND e.id BETWEEN $1 AND $2
    ORDER BY e.id),
posted AS (
    SELECT l.id, p.tx_id FROM legs l CROSS JOIN LATERAL (
        SELECT array_agg(leg.a ORDER BY leg.a) AS ids, array_agg(leg.m ORDER BY leg.a) AS amounts
        FROM (VALUES (l.wallet, l.paid), (l.charges, -l.charge), (l.clearing, -(l.paid - l.charge))) leg(a, m)
        WHERE leg.m <> 0) s
    CROSS JOIN LATERAL ledger_post('monnify:' || l.transaction_reference, 'funding',
        left('Bank transfer ' || l.transaction_reference, 255), 'monnify_event', l.id::text,
        'monnify-webhook', s.ids, s.amounts) p)
UPDATE monnify_events e SET ledger_transaction_id = posted.tx_id FROM posted WHERE e.id = posted.id
"""

# The purchases whose ledger postings are made: per customer, oldest first, while their credited funding
# covers what they were charged, at most :ledger_purchases in all (the most recent of those).
_LEDGERED = """
CREATE TABLE bench_ledgered AS
SELECT row_number() OVER (ORDER BY created_at, id)::int AS n, id, user_id, amount_kobo, cost_kobo, status
FROM (
    SELECT * FROM (
        SELECT p.id, p.user_id, p.amount_kobo, p.cost_kobo, p.status, p.created_at,
            sum(p.amount_kobo) OVER (PARTITION BY p.user_id ORDER BY p.created_at, p.id) AS spent,
            f.funded
        FROM purchases p
        JOIN (SELECT user_id, sum(credited_kobo) AS funded FROM monnify_events
              WHERE ledger_transaction_id IS NOT NULL GROUP BY user_id) f USING (user_id)
    ) s
    WHERE spent <= funded
    ORDER BY created_at DESC LIMIT :ledger_purchases
) chosen;
ALTER TABLE bench_ledgered ADD PRIMARY KEY (n);
"""

# A batch of purchases (n BETWEEN $1 AND $2 of bench_ledgered, oldest first): the purchase posting
# (wallet -> in flight), then the delivery (in flight -> float + commission) unless failed / pending,
# then the refund (failed: in flight -> wallet; reversed: float + commission -> wallet): the keys and legs
# of app/vtu/sql/purchases.sql and app.vtu.postings.
_PURCHASE_POSTINGS = """
WITH acc AS (
    SELECT max(id) FILTER (WHERE code = 'purchases_in_flight') AS in_flight,
           max(id) FILTER (WHERE code = 'provider_float:vtpass') AS float,
           max(id) FILTER (WHERE code = 'revenue:commission') AS revenue
    FROM ledger_accounts WHERE kind = 'system'),
batch AS (
    SELECT b.*, w.id AS wallet, acc.* FROM bench_ledgered b
    JOIN ledger_accounts w ON w.user_id = b.user_id AND w.kind = 'wallet', acc
    WHERE b.n BETWEEN $1 AND $2),
steps AS (
    SELECT n, 1 AS step, 'purchase:' || id AS key, 'purchase' AS kind, 'Purchase' AS memo, id,
        ARRAY[(wallet, -amount_kobo), (in_flight, amount_kobo)]::bench_leg[] AS legs FROM batch
    UNION ALL
    SELECT n, 2, 'delivery:' || id, 'purchase_delivery', 'Purchase delivered', id,
        ARRAY[(in_flight, -amount_kobo), (float, cost_kobo), (revenue, amount_kobo - cost_kobo)]::bench_leg[]
    FROM batch WHERE status IN ('successful', 'reversed')
    UNION ALL
    SELECT n, 3, 'refund:' || id, 'purchase_refund', 'Refund', id,
        CASE WHEN status = 'failed'
             THEN ARRAY[(in_flight, -amount_kobo), (wallet, amount_kobo)]::bench_leg[]
             ELSE ARRAY[(float, -cost_kobo), (revenue, cost_kobo - amount_kobo),
                        (wallet, amount_kobo)]::bench_leg[]
        END
    FROM batch WHERE status IN ('failed', 'reversed'))
SELECT count(p.tx_id) FROM (SELECT * FROM steps ORDER BY n, step) s
CROSS JOIN LATERAL (SELECT array_agg(l.account ORDER BY l.account) AS ids,
                           array_agg(l.amount ORDER BY l.account) AS amounts
                    FROM unnest(s.legs) l WHERE l.amount <> 0) legs
CROSS JOIN LATERAL ledger_post(s.key, s.kind, s.memo, 'purchase', s.id::text, 'system',
                               legs.ids, legs.amounts) p
"""

# Rows for the pages the first seed (SEED_VERSION 1) had no tables for: the audit log, adjustments and
# alerts. Added at start when the table is empty (cheap: set-based, a few seconds), so the seed is kept.
# :audit audit entries over :days days (the actions staff take, a dozen staff e-mails), :adjustments
# adjustments (all but :adj_pending decided: rejected, so no ledger posting is needed), a few alerts
# (2 open, the rest cleared, some in the last 24 h). audit_log is append-only for UPDATE / DELETE /
# TRUNCATE; INSERT is how the app writes it too.
_AUDIT = """
INSERT INTO audit_log (at, actor_id, actor, actor_role, action, target_type, target_id, before, after,
                       reason, ip)
SELECT t, NULL, 'staff' || (g % 12) || '@vtu.example.ng',
    (ARRAY['support','operations','finance','admin'])[1 + g % 4], a.action, a.target_type,
    CASE a.target_type WHEN 'purchase' THEN gen_random_uuid()::text WHEN 'user' THEN gen_random_uuid()::text
                       ELSE (g * 37 % 300000)::text END,
    jsonb_build_object('status', 'pending'), jsonb_build_object('status', 'successful'),
    'bench seed: ' || a.action, '102.89.' || (g % 250) || '.' || (g % 200)
FROM (SELECT g, now() - (1 - g::float / :audit) * :days * interval '1 day' AS t
      FROM generate_series(1, :audit) g) s
CROSS JOIN LATERAL (SELECT (ARRAY['purchase.requery','purchase.resolve_delivered','purchase.resolve_failed',
        'purchase.clear_flag','user.suspend','user.unsuspend','funding.retry','funding.assign',
        'adjustment.request','adjustment.approve','plan.deactivate','apikey.revoke'])[1 + (g * 7) % 12]
        AS action,
        (ARRAY['purchase','purchase','purchase','purchase','user','user','funding_event','funding_event',
        'adjustment','adjustment','plan','api_key'])[1 + (g * 7) % 12] AS target_type
        WHERE s.g IS NOT NULL) a
"""

_ADJUSTMENTS = """
INSERT INTO adjustments (id, user_id, direction, amount_kobo, reason, status, requested_by, requested_at,
                         decided_by, decided_at, decision_note, created_at, updated_at)
SELECT gen_random_uuid(), u.id, CASE WHEN g % 3 = 0 THEN 'debit' ELSE 'credit' END,
    (1000 + g % 50 * 1000) * 100, 'bench seed: goodwill credit ' || g,
    CASE WHEN g <= :adj_pending THEN 'pending_approval' ELSE 'rejected' END,
    'finance' || (g % 3) || '@vtu.example.ng', t,
    CASE WHEN g > :adj_pending THEN 'finance9@vtu.example.ng' END,
    CASE WHEN g > :adj_pending THEN t + interval '1 hour' END,
    CASE WHEN g > :adj_pending THEN 'not warranted (bench seed)' END, t, t
FROM (SELECT g, now() - (g::float / :adjustments) * :days * interval '1 day' AS t
      FROM generate_series(1, :adjustments) g) s
CROSS JOIN LATERAL (SELECT id FROM users WHERE NOT is_staff ORDER BY created_at
                    OFFSET (s.g * 13) % 10 LIMIT 1) u
"""

_ALERTS = """
INSERT INTO alerts (key, opened_at, last_seen_at, cleared_at, message)
SELECT CASE WHEN g <= 2 THEN 'bench_open_' || g ELSE 'bench_cleared_' || g END,
    now() - g * interval '2 hours', now() - g * interval '1 hour',
    CASE WHEN g > 2 THEN now() - g * interval '1 hour' END, 'Bench seed alert ' || g
FROM generate_series(1, 40) g
"""


def _sql(template: str, volume: Volume) -> str:
    values = {
        ":n_users": str(volume.users),
        ":users": str(volume.users),
        ":purchases": str(volume.purchases),
        ":pending": str(max(1, min(300, volume.purchases // 100))),
        ":events": str(volume.events),
        ":stuck": str(max(1, min(5, volume.events // 10))),
        ":days": str(volume.days),
        ":ledger_purchases": str(volume.ledger_purchases),
        ":audit": str(max(20, min(50_000, volume.purchases // 20))),
        ":adjustments": str(max(5, min(2_000, volume.users // 100))),
        ":adj_pending": str(max(2, min(30, volume.users // 1000))),
    }
    for name in sorted(values, key=len, reverse=True):
        template = template.replace(name, values[name])
    return template


def _asyncpg_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _seed(url: str, volume: Volume, *, say: Callable[[str], None]) -> dict[str, Any]:
    """Fill a freshly migrated database; returns what was made (rows, seconds per step)."""
    import asyncpg

    started = time.perf_counter()
    facts: dict[str, Any] = {}
    connection = await asyncpg.connect(_asyncpg_url(url))
    try:
        await connection.execute("SET synchronous_commit = off")
        await connection.execute(_HELPERS)
        await connection.execute("CREATE TYPE bench_leg AS (account bigint, amount bigint)")

        async def step(label: str, sql: str) -> None:
            began = time.perf_counter()
            await connection.execute(_sql(sql, volume))
            say(f"  seed: {label} ({time.perf_counter() - began:.1f} s)")

        await step("users", _USERS)
        await step("numbering", _NUMBERED)
        await step("referrals", _REFERRALS)
        await step("wallets (ledger_open_wallet)", _WALLETS)
        await step("reserved accounts", _RESERVED)
        await step("services", _SERVICES)
        await step("purchases", _PURCHASES)
        await step("monnify events", _EVENTS)
        await step("event amounts", _EVENT_AMOUNTS)
        await connection.execute("ANALYZE")
        await _seed_ledger(connection, volume, facts, say=say)
        began = time.perf_counter()
        await connection.execute("VACUUM (ANALYZE)")
        say(f"  seed: vacuum + analyze ({time.perf_counter() - began:.1f} s)")
        for table in ("users", "purchases", "monnify_events", "ledger_transactions", "ledger_entries"):
            facts[table] = await connection.fetchval(f"SELECT count(*) FROM {table}")
        facts["seconds"] = round(time.perf_counter() - started, 1)
        return facts
    finally:
        await connection.close()


async def _seed_ledger(
    connection: Any, volume: Volume, facts: dict[str, Any], *, say: Callable[[str], None]
) -> None:
    """The ledger postings (ledger_post from set-based SQL, a batch per transaction). The ledger tables
    start empty and ANALYZE saw them so: ledger_post's cached plans (its balance check counts a
    transaction's entries) would scan ledger_entries on every call as it grows; no sequential scans here."""
    await connection.execute("SET enable_seqscan = off")
    try:
        began = time.perf_counter()
        low, high = await connection.fetchrow(
            "SELECT min(id), max(id) FROM (SELECT id FROM monnify_events WHERE status = 'credited'"
            " ORDER BY id DESC LIMIT $1) s",
            volume.ledger_events,
        )
        batch = 5_000
        for start in range(low or 0, (high or 0) + 1, batch):
            await connection.execute(_FUNDING_POSTINGS, start, start + batch - 1)
        funded = await connection.fetchval("SELECT count(ledger_transaction_id) FROM monnify_events")
        facts["ledgered_events"] = funded
        say(f"  seed: {funded:,} funding postings (ledger_post) ({time.perf_counter() - began:.1f} s)")

        await connection.execute("RESET enable_seqscan")
        await connection.execute(_sql(_LEDGERED, volume))
        await connection.execute("SET enable_seqscan = off")
        began = time.perf_counter()
        total = await connection.fetchval("SELECT count(*) FROM bench_ledgered")
        batch, postings = 5_000, 0
        for start in range(1, total + 1, batch):
            postings += await connection.fetchval(_PURCHASE_POSTINGS, start, start + batch - 1)
        say(
            f"  seed: {postings:,} purchase postings (ledger_post) for {total:,} purchases "
            f"({time.perf_counter() - began:.1f} s)"
        )
        facts["ledgered_purchases"] = total
        say(
            f"  seed: the ledger holds the postings of {funded:,} credited events and {total:,} purchases; "
            "the other events and purchases are rows without ledger transactions (ledger_post for all of "
            "them would take far longer than the seed's budget)"
        )
        await connection.execute("DROP TABLE bench_ledgered, bench_services, bench_users")
        await connection.execute("DROP TYPE bench_leg")
    finally:
        await connection.execute("RESET enable_seqscan")


async def _seed_extras(url: str, volume: Volume, *, say: Callable[[str], None]) -> None:
    """Audit entries, adjustments and alerts, each only when its table is empty (see _AUDIT)."""
    import asyncpg

    connection = await asyncpg.connect(_asyncpg_url(url))
    try:
        for table, sql in (("audit_log", _AUDIT), ("adjustments", _ADJUSTMENTS), ("alerts", _ALERTS)):
            if await connection.fetchval(f"SELECT EXISTS (SELECT FROM {table})"):
                continue
            began = time.perf_counter()
            await connection.execute(_sql(sql, volume))
            await connection.execute(f"ANALYZE {table}")
            rows = await connection.fetchval(f"SELECT count(*) FROM {table}")
            say(f"  seed: {rows:,} {table} rows ({time.perf_counter() - began:.1f} s)")
    finally:
        await connection.close()


def _psql(srv: Server, database: str, sql: str) -> str:
    from app.core.embedded import postgres_bin_dir

    psql = postgres_bin_dir() / "psql"
    done = subprocess.run(
        [str(psql) if psql.exists() else "psql", "-X", "-q", "-At", "-d", database, "-c", sql],
        env=srv.env(),
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def _migrate(url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "app", "database", "upgrade", "--no-prompt"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        check=True,
        capture_output=True,
    )


def _seeded(srv: Server, volume: Volume) -> str | None:
    """The seed's marker line when the seed database exists and holds this seed version and volume."""
    exists = _psql(srv, "postgres", f"SELECT 1 FROM pg_database WHERE datname = '{SEED_DATABASE}'")
    if not exists:
        return None
    try:
        return (
            _psql(
                srv,
                SEED_DATABASE,
                "SELECT seeded_at || ' in ' || seconds || ' s: ' || rows::text FROM bench_seed "
                f"WHERE version = {SEED_VERSION} AND volume = '{volume.marker()}'",
            )
            or None
        )
    except subprocess.CalledProcessError:
        return None


def _renumbered(srv: Server) -> None:
    """Seeds built on the console-indexes branch before it was merged recorded its indexes as revision
    0017 (renumbered 0021 on main, where 0017 is another migration) and made a credited-today index that
    0019 now makes under another name: back to 0016 without it, so `upgrade` runs 0017-0021 (0021's
    indexes are IF NOT EXISTS)."""
    _psql(
        srv,
        SEED_DATABASE,
        "DO $$ BEGIN IF (SELECT version_num FROM alembic_version) = '0017'"
        " AND to_regclass('adjustments') IS NULL"
        " AND to_regclass('ix_monnify_events_credited_processed_at') IS NOT NULL THEN"
        " DROP INDEX ix_monnify_events_credited_processed_at;"
        " UPDATE alembic_version SET version_num = '0016'; END IF; END $$",
    )


def ensure_seed(srv: Server, volume: Volume, *, reseed: bool, say: Callable[[str], None]) -> str:
    """The seeded database's URL: reused when its marker matches, else (re)built."""
    url = srv.url_for(SEED_DATABASE)
    marker = None if reseed else _seeded(srv, volume)
    if marker:
        say(f"seed: reusing {SEED_DATABASE} (seeded {marker})")
        _renumbered(srv)
        _migrate(url)  # new migrations (indexes) reach the seed too
        asyncio.run(_seed_extras(url, volume, say=say))
        return url
    say(f"seed: building {SEED_DATABASE}: {volume.label()} over {volume.days} days (once; --reseed rebuilds)")
    _psql(srv, "postgres", f'DROP DATABASE IF EXISTS "{SEED_DATABASE}" WITH (FORCE)')
    _psql(srv, "postgres", f'CREATE DATABASE "{SEED_DATABASE}"')
    _migrate(url)
    facts = asyncio.run(_seed(url, volume, say=say))
    asyncio.run(_seed_extras(url, volume, say=say))
    import json

    _psql(
        srv,
        SEED_DATABASE,
        "CREATE TABLE bench_seed (version int, volume text, rows jsonb, seconds float, "
        "seeded_at timestamptz DEFAULT now()); "
        f"INSERT INTO bench_seed (version, volume, rows, seconds) VALUES ({SEED_VERSION}, "
        f"'{volume.marker()}', '{json.dumps(facts)}', {facts['seconds']})",
    )
    say(f"seed: done in {facts['seconds']:.0f} s: {facts}")
    return url


# -- measuring ------------------------------------------------------------------------------------------
def _staff_user(url: str) -> None:
    """The staff admin who logs in (`vtu users create --role admin`); kept when it is already there."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "app", "users", "create", "--email", STAFF_EMAIL),
            *("--password", STAFF_PASSWORD, "--role", "admin", "--name", "Bench Admin"),
        ],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 and "already exists" not in done.stderr:
        raise RuntimeError(f"could not create the staff user:\n{done.stdout}\n{done.stderr}")


async def _samples(url: str) -> Samples:
    import asyncpg

    from app.core.keyset import Cursor

    connection = await asyncpg.connect(_asyncpg_url(url))
    try:
        p = await connection.fetchrow(
            "SELECT id, request_id, recipient FROM purchases WHERE kind = 'airtime' AND status = 'successful'"
            " ORDER BY created_at DESC LIMIT 1 OFFSET 100"
        )
        p = p or await connection.fetchrow("SELECT id, request_id, recipient FROM purchases LIMIT 1")
        total = await connection.fetchval("SELECT count(*) FROM purchases")
        deep = await connection.fetchrow(
            "SELECT created_at, id FROM purchases ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET $1",
            total // 2,
        )
        u = await connection.fetchrow(
            "SELECT u.id, u.email, u.phone, u.account_reference FROM users u WHERE NOT is_staff AND EXISTS "
            "(SELECT 1 FROM purchases p WHERE p.user_id = u.id) ORDER BY u.created_at LIMIT 1 OFFSET 10"
        )
        e = await connection.fetchrow(
            "SELECT id, transaction_reference, amount_paid_kobo FROM monnify_events WHERE status = 'credited'"
            " ORDER BY id DESC LIMIT 1 OFFSET 20"
        )
        e = e or await connection.fetchrow(
            "SELECT id, transaction_reference, amount_paid_kobo FROM monnify_events LIMIT 1"
        )
    finally:
        await connection.close()
    local = u["email"].split("@", 1)[0]
    return Samples(
        purchase_id=str(p["id"]),
        request_id=p["request_id"],
        phone=p["recipient"],
        email_fragment=f"{local[1:]}@",  # "ser11.tunde@": part of that customer's address
        email=u["email"],
        user_phone=u["phone"] or "08000000000",
        user_id=str(u["id"]),
        account_reference=u["account_reference"],
        cursor=Cursor(deep["created_at"], deep["id"]).encode(),
        event_id=str(e["id"]),
        transaction_reference=e["transaction_reference"],
        amount_naira=str((e["amount_paid_kobo"] or 500_000) // 100),
    )


def _paths(samples: Samples, only: set[str] | None) -> list[tuple[str, str]]:
    return [
        (name, page if isinstance(page, str) else page(samples))
        for name, page in PAGES
        if not only or name in only
    ]


@dataclass(slots=True)
class PageResult:
    name: str
    path: str
    latencies: list[float]
    size: int

    def p(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000


async def _log_in(base: str) -> str:
    """The session cookie of the staff admin, logged in through the real log-in form."""
    import re

    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        page = await client.get("/login")
        token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
        assert token, "no CSRF token on /login"
        data = {"email": STAFF_EMAIL, "password": STAFF_PASSWORD, "_csrf_token": token.group(1)}
        answer = await client.post("/login", data=data, follow_redirects=False)
        if answer.status_code not in (302, 303):
            raise RuntimeError(f"log-in failed: HTTP {answer.status_code}")
        check = await client.get("/staff/purchases/counts")
        if check.status_code != 200:
            raise RuntimeError(f"the staff admin cannot open the console: HTTP {check.status_code}")
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


async def _measure(
    base: str, pages: list[tuple[str, str]], *, requests: int, concurrency: int, seconds: float
) -> tuple[list[PageResult], list[float]]:
    cookie = await _log_in(base)
    parsed = urlparse(base)
    pool = RawHttpPool(parsed.hostname or "127.0.0.1", parsed.port or 80)
    headers = {"cookie": cookie}
    results: list[PageResult] = []
    try:

        async def get(worker: int, path: str) -> int:
            status, body = await pool.request(worker, "GET", path, headers=headers)
            if status != 200:
                raise RuntimeError(f"GET {path}: HTTP {status}: {body[:300]!r}")
            return len(body)

        for name, path in pages:
            for _ in range(3):  # warm-up: connection, statement caches, buffers
                await get(0, path)
            latencies, size = [], 0
            for _ in range(requests):
                began = time.perf_counter()
                size = await get(0, path)
                latencies.append(time.perf_counter() - began)
            results.append(PageResult(name, path, latencies, size))
        mixed: list[float] = []
        if concurrency > 1 and seconds > 0:
            await pool.connect(concurrency)
            counter = iter(range(10**9))

            async def one(worker: int) -> None:
                await get(worker, pages[next(counter) % len(pages)][1])

            mixed = (await run_workers(one, workers=concurrency, seconds=seconds)).latencies
        return results, mixed
    finally:
        await pool.aclose()


def _run_pages(
    url: str, args: argparse.Namespace, say: Callable[[str], None]
) -> tuple[list[PageResult], list[float]]:
    _staff_user(url)
    samples = asyncio.run(_samples(url))
    only = set(args.pages.split(",")) if args.pages else None
    pages = _paths(samples, only)
    env = {"LOG_LEVEL": "WARNING", "VTU_PROVIDER": "stub"}
    with app_server(url, env, web_workers=args.web_workers) as base:
        return asyncio.run(
            _measure(
                base, pages, requests=args.requests, concurrency=args.concurrency, seconds=args.mixed_seconds
            )
        )


def _table(loaded: list[PageResult], empty: list[PageResult], say: Callable[[str], None]) -> None:
    by_name = {r.name: r for r in empty}
    say(f"{'page':<26} {'p50':>8} {'p99':>8} {'empty p50':>10} {'empty p99':>10} {'KiB':>6}  path")
    for r in loaded:
        e = by_name.get(r.name)
        mark = "  OVER" if r.p(99) >= TARGET_P99_MS else ""
        say(
            f"{r.name:<26} {r.p(50):>8.1f} {r.p(99):>8.1f} {e.p(50) if e else 0:>10.1f} "
            f"{e.p(99) if e else 0:>10.1f} {r.size / 1024:>6.0f}  {r.path[:70]}{mark}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=60, help="sequential requests per page (60)")
    parser.add_argument("--concurrency", type=int, default=4, help="clients in the mixed run (4; 0: none)")
    parser.add_argument("--mixed-seconds", type=float, default=10, help="length of the mixed run (10 s)")
    parser.add_argument("--web-workers", type=int, default=os.cpu_count() or 1, help="web processes (CPUs)")
    parser.add_argument("--pages", default="", help="only these pages (names, comma-separated)")
    parser.add_argument("--reseed", action="store_true", help="rebuild the seeded database")
    parser.add_argument("--users", type=int, default=FULL.users)
    parser.add_argument("--purchases", type=int, default=FULL.purchases)
    parser.add_argument("--events", type=int, default=FULL.events)
    parser.add_argument(
        "--ledger-purchases",
        type=int,
        default=FULL.ledger_purchases,
        help="purchases given their ledger postings (20,000: the most recent covered by posted funding)",
    )
    parser.add_argument(
        "--ledger-events",
        type=int,
        default=FULL.ledger_events,
        help="credited events given their funding posting (30,000: the most recent)",
    )
    parser.add_argument("--skip-empty", action="store_true", help="no anchor run (for quick iterations)")
    args = parser.parse_args()
    volume = Volume(
        args.users,
        args.purchases,
        args.events,
        ledger_events=args.ledger_events,
        ledger_purchases=args.ledger_purchases,
    )

    def say(line: str) -> None:
        print(line, flush=True)

    srv = server()
    say(
        f"server: {srv.host}:{srv.port} ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}); "
        f"{args.requests} sequential requests per page after 3 warm-ups, then {args.concurrency} clients "
        f"for {args.mixed_seconds:g} s over all pages; app `vtu run --wc {args.web_workers}`"
    )
    url = ensure_seed(srv, volume, reseed=args.reseed, say=say)
    loaded, loaded_mixed = _run_pages(url, args, say)
    empty: list[PageResult] = []
    empty_mixed: list[float] = []
    if not args.skip_empty:
        with throwaway_database(srv, f"console_{uuid.uuid4().hex[:6]}", migrate=True) as empty_url:
            asyncio.run(_seed(empty_url, EMPTY, say=lambda _: None))
            asyncio.run(_seed_extras(empty_url, EMPTY, say=lambda _: None))
            empty, empty_mixed = _run_pages(empty_url, args, say)
    say(f"pages at {volume.label()} (ms; beside them the same pages on a database of a handful of rows):")
    _table(loaded, empty, say)
    if loaded_mixed:
        say(
            f"mixed, {args.concurrency} clients over all pages: at volume p50 "
            f"{percentile(loaded_mixed, 50) * 1000:.1f} ms, p99 {percentile(loaded_mixed, 99) * 1000:.1f} ms "
            f"({len(loaded_mixed) / args.mixed_seconds:.0f}/s); empty p50 "
            f"{percentile(empty_mixed, 50) * 1000:.1f} ms, p99 {percentile(empty_mixed, 99) * 1000:.1f} ms "
            f"({len(empty_mixed) / args.mixed_seconds:.0f}/s)"
        )
    worst = max(loaded, key=lambda r: r.p(99))
    worst_empty = max(empty, key=lambda r: r.p(99)) if empty else None
    empty_p99 = worst_empty.p(99) if worst_empty else 0.0
    ratio = f", ratio {worst.p(99) / empty_p99:.1f}x" if empty_p99 else ""
    verdict = "PASS" if worst.p(99) < TARGET_P99_MS else "FAIL"
    say(
        f"console: worst p99 {worst.p(99):.1f} ms at {volume.purchases:,} purchases / {volume.users:,} users "
        f"({worst.name}) vs {empty_p99:.1f} ms empty"
        f"{f' ({worst_empty.name})' if worst_empty else ''}{ratio}; "
        f"target < {TARGET_P99_MS:.0f} ms: {verdict}"
    )


if __name__ == "__main__":
    main()
