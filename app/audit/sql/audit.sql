-- The audit log is append-only, like the ledger (app/audit/README.md): a staff action, once recorded, is
-- never edited or removed, whoever is connected. The application role also lacks UPDATE and DELETE on the
-- table (app/core/roles.py); these triggers hold for the owner too.
-- Current definitions; see docs/architecture.md, "Where SQL lives".

CREATE OR REPLACE FUNCTION audit_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % is not allowed: the audit log is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'AU001';
END
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_change();
