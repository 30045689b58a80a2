-- A referral row is opened when a user is created (or linked) with a referrer, carrying whether the
-- friend's e-mail is verified: bonuses are withheld until it is (app/referrals/README.md).
-- Current definition; see docs/architecture.md, "How to change a SQL function".

CREATE OR REPLACE FUNCTION referrals_open() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.referred_by_id IS NOT NULL THEN
        INSERT INTO referrals (referred_id, referred_verified_at) VALUES (NEW.id, NEW.email_verified_at)
        ON CONFLICT (referred_id) DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_open_referral AFTER INSERT OR UPDATE OF referred_by_id ON users
    FOR EACH ROW WHEN (NEW.referred_by_id IS NOT NULL) EXECUTE FUNCTION referrals_open();
