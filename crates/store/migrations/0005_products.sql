-- Loan products and quotes (issue #5, products and pricing).
--
-- A product is a code and a name with a status; what it offers lives in its versions.
-- A version is never edited or deleted (quotes and contracts reference it): saving a
-- product again adds a version. `spec` is the JSON of zhudai_domain::product::ProductSpec;
-- the range columns repeat it for listing and search. `cap_check` is the JSON of the cap
-- search made when the version was saved, and `apr_cap` the cap in force then.
CREATE TABLE products (
    id {{ID}},
    code TEXT NOT NULL CONSTRAINT products_code_key UNIQUE,
    name TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'draft' CONSTRAINT products_status_check CHECK (status IN ('draft', 'active', 'retired')),
    current_version BIGINT NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE product_versions (
    id {{ID}},
    product_id BIGINT NOT NULL CONSTRAINT product_versions_product_id_fkey REFERENCES products (id),
    version BIGINT NOT NULL,
    spec TEXT NOT NULL,
    min_amount_fen BIGINT NOT NULL,
    max_amount_fen BIGINT NOT NULL,
    min_months BIGINT NOT NULL,
    max_months BIGINT NOT NULL,
    annual_rate TEXT NOT NULL,
    worst_apr TEXT NOT NULL,
    apr_cap TEXT NOT NULL,
    cap_check TEXT NOT NULL,
    note TEXT,
    created_by TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    CONSTRAINT product_versions_product_version_key UNIQUE (product_id, version)
);

-- A quote: the schedule and the 综合融资成本明示表 of one loan, frozen as JSON with its
-- SHA-256 digest. A contract (issue #6) freezes the quote id.
CREATE TABLE quotes (
    id {{ID}},
    product_id BIGINT NOT NULL CONSTRAINT quotes_product_id_fkey REFERENCES products (id),
    product_version_id BIGINT NOT NULL CONSTRAINT quotes_product_version_id_fkey REFERENCES product_versions (id),
    amount_fen BIGINT NOT NULL,
    months BIGINT NOT NULL,
    method TEXT NOT NULL,
    start_date TEXT NOT NULL,
    apr TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    digest TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX quotes_product_idx ON quotes (product_id, created_at_ms);

--@sqlite
CREATE TRIGGER product_versions_no_update BEFORE UPDATE ON product_versions
BEGIN SELECT RAISE(ABORT, 'product_versions is append-only'); END;
CREATE TRIGGER product_versions_no_delete BEFORE DELETE ON product_versions
BEGIN SELECT RAISE(ABORT, 'product_versions is append-only'); END;
CREATE TRIGGER quotes_no_update BEFORE UPDATE ON quotes
BEGIN SELECT RAISE(ABORT, 'quotes is append-only'); END;
CREATE TRIGGER quotes_no_delete BEFORE DELETE ON quotes
BEGIN SELECT RAISE(ABORT, 'quotes is append-only'); END;
--@end
--@postgres
CREATE TRIGGER product_versions_append_only BEFORE UPDATE OR DELETE ON product_versions
    FOR EACH ROW EXECUTE FUNCTION zhudai_append_only();
CREATE TRIGGER quotes_append_only BEFORE UPDATE OR DELETE ON quotes
    FOR EACH ROW EXECUTE FUNCTION zhudai_append_only();
--@end
