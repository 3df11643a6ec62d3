-- An immutability rule may let the tags it makes immutable still expire (from a label,
-- an annotation or the API): they keep refusing moves and deletes. An immutable tag has
-- an expiry only when such a rule allowed it, so the expiry job needs no rule lookup.
ALTER TABLE immutability_rules ADD COLUMN allow_expiry BIGINT NOT NULL DEFAULT 0
    CHECK (allow_expiry IN (0, 1));
