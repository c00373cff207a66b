-- Routing statistics per funder, kept up to date by triggers.
--
-- Every routing of an application reads each funder's attempts, approvals, declines and
-- average decision time (the waterfall orders funders by approval rate), and the partner
-- page shows them. They were summed over every routing step ever recorded, joined to its
-- run: a read that grew with the book, on every application. Now one row per funder holds
-- the sums; triggers on routing_steps add a step's share when it is inserted, move it
-- when its outcome or duration changes (a callback deciding a pending step) and take it
-- away when it is deleted, so no code path can forget to. A run's amount never changes
-- after it is inserted. The sums of the steps already recorded are copied in here.
CREATE TABLE partner_routing_stats (
    partner_code TEXT NOT NULL CONSTRAINT partner_routing_stats_pkey PRIMARY KEY,
    attempts BIGINT NOT NULL DEFAULT 0,
    approved BIGINT NOT NULL DEFAULT 0,
    declined BIGINT NOT NULL DEFAULT 0,
    timeouts BIGINT NOT NULL DEFAULT 0,
    errors BIGINT NOT NULL DEFAULT 0,
    pending BIGINT NOT NULL DEFAULT 0,
    -- Sum of the decision times of approved and declined steps that have one, and how many.
    decided_ms BIGINT NOT NULL DEFAULT 0,
    timed BIGINT NOT NULL DEFAULT 0,
    approved_amount BIGINT NOT NULL DEFAULT 0
);
INSERT INTO partner_routing_stats
    (partner_code, attempts, approved, declined, timeouts, errors, pending, decided_ms, timed, approved_amount)
SELECT s.partner_code,
    CAST(SUM(CASE WHEN s.outcome <> 'skipped' THEN 1 ELSE 0 END) AS BIGINT),
    CAST(SUM(CASE WHEN s.outcome = 'approved' THEN 1 ELSE 0 END) AS BIGINT),
    CAST(SUM(CASE WHEN s.outcome = 'declined' THEN 1 ELSE 0 END) AS BIGINT),
    CAST(SUM(CASE WHEN s.outcome = 'timeout' THEN 1 ELSE 0 END) AS BIGINT),
    CAST(SUM(CASE WHEN s.outcome = 'error' THEN 1 ELSE 0 END) AS BIGINT),
    CAST(SUM(CASE WHEN s.outcome = 'pending' THEN 1 ELSE 0 END) AS BIGINT),
    CAST(SUM(CASE WHEN s.outcome IN ('approved', 'declined') AND s.duration_ms IS NOT NULL THEN s.duration_ms ELSE 0 END) AS BIGINT),
    CAST(SUM(CASE WHEN s.outcome IN ('approved', 'declined') AND s.duration_ms IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT),
    CAST(SUM(CASE WHEN s.outcome = 'approved' THEN r.amount_fen ELSE 0 END) AS BIGINT)
FROM routing_steps s JOIN routing_runs r ON r.id = s.run_id
GROUP BY s.partner_code;
--@sqlite
CREATE TRIGGER routing_steps_stats_insert AFTER INSERT ON routing_steps
BEGIN
  INSERT OR IGNORE INTO partner_routing_stats (partner_code) VALUES (NEW.partner_code);
  UPDATE partner_routing_stats SET
    attempts = attempts + CASE WHEN NEW.outcome <> 'skipped' THEN 1 ELSE 0 END,
    approved = approved + CASE WHEN NEW.outcome = 'approved' THEN 1 ELSE 0 END,
    declined = declined + CASE WHEN NEW.outcome = 'declined' THEN 1 ELSE 0 END,
    timeouts = timeouts + CASE WHEN NEW.outcome = 'timeout' THEN 1 ELSE 0 END,
    errors = errors + CASE WHEN NEW.outcome = 'error' THEN 1 ELSE 0 END,
    pending = pending + CASE WHEN NEW.outcome = 'pending' THEN 1 ELSE 0 END,
    decided_ms = decided_ms + CASE WHEN NEW.outcome IN ('approved', 'declined') AND NEW.duration_ms IS NOT NULL THEN NEW.duration_ms ELSE 0 END,
    timed = timed + CASE WHEN NEW.outcome IN ('approved', 'declined') AND NEW.duration_ms IS NOT NULL THEN 1 ELSE 0 END,
    approved_amount = approved_amount + CASE WHEN NEW.outcome = 'approved' THEN COALESCE((SELECT amount_fen FROM routing_runs WHERE id = NEW.run_id), 0) ELSE 0 END
  WHERE partner_code = NEW.partner_code;
END;
CREATE TRIGGER routing_steps_stats_update
AFTER UPDATE OF run_id, partner_code, outcome, duration_ms ON routing_steps
BEGIN
  UPDATE partner_routing_stats SET
    attempts = attempts - CASE WHEN OLD.outcome <> 'skipped' THEN 1 ELSE 0 END,
    approved = approved - CASE WHEN OLD.outcome = 'approved' THEN 1 ELSE 0 END,
    declined = declined - CASE WHEN OLD.outcome = 'declined' THEN 1 ELSE 0 END,
    timeouts = timeouts - CASE WHEN OLD.outcome = 'timeout' THEN 1 ELSE 0 END,
    errors = errors - CASE WHEN OLD.outcome = 'error' THEN 1 ELSE 0 END,
    pending = pending - CASE WHEN OLD.outcome = 'pending' THEN 1 ELSE 0 END,
    decided_ms = decided_ms - CASE WHEN OLD.outcome IN ('approved', 'declined') AND OLD.duration_ms IS NOT NULL THEN OLD.duration_ms ELSE 0 END,
    timed = timed - CASE WHEN OLD.outcome IN ('approved', 'declined') AND OLD.duration_ms IS NOT NULL THEN 1 ELSE 0 END,
    approved_amount = approved_amount - CASE WHEN OLD.outcome = 'approved' THEN COALESCE((SELECT amount_fen FROM routing_runs WHERE id = OLD.run_id), 0) ELSE 0 END
  WHERE partner_code = OLD.partner_code;
  INSERT OR IGNORE INTO partner_routing_stats (partner_code) VALUES (NEW.partner_code);
  UPDATE partner_routing_stats SET
    attempts = attempts + CASE WHEN NEW.outcome <> 'skipped' THEN 1 ELSE 0 END,
    approved = approved + CASE WHEN NEW.outcome = 'approved' THEN 1 ELSE 0 END,
    declined = declined + CASE WHEN NEW.outcome = 'declined' THEN 1 ELSE 0 END,
    timeouts = timeouts + CASE WHEN NEW.outcome = 'timeout' THEN 1 ELSE 0 END,
    errors = errors + CASE WHEN NEW.outcome = 'error' THEN 1 ELSE 0 END,
    pending = pending + CASE WHEN NEW.outcome = 'pending' THEN 1 ELSE 0 END,
    decided_ms = decided_ms + CASE WHEN NEW.outcome IN ('approved', 'declined') AND NEW.duration_ms IS NOT NULL THEN NEW.duration_ms ELSE 0 END,
    timed = timed + CASE WHEN NEW.outcome IN ('approved', 'declined') AND NEW.duration_ms IS NOT NULL THEN 1 ELSE 0 END,
    approved_amount = approved_amount + CASE WHEN NEW.outcome = 'approved' THEN COALESCE((SELECT amount_fen FROM routing_runs WHERE id = NEW.run_id), 0) ELSE 0 END
  WHERE partner_code = NEW.partner_code;
END;
CREATE TRIGGER routing_steps_stats_delete AFTER DELETE ON routing_steps
BEGIN
  UPDATE partner_routing_stats SET
    attempts = attempts - CASE WHEN OLD.outcome <> 'skipped' THEN 1 ELSE 0 END,
    approved = approved - CASE WHEN OLD.outcome = 'approved' THEN 1 ELSE 0 END,
    declined = declined - CASE WHEN OLD.outcome = 'declined' THEN 1 ELSE 0 END,
    timeouts = timeouts - CASE WHEN OLD.outcome = 'timeout' THEN 1 ELSE 0 END,
    errors = errors - CASE WHEN OLD.outcome = 'error' THEN 1 ELSE 0 END,
    pending = pending - CASE WHEN OLD.outcome = 'pending' THEN 1 ELSE 0 END,
    decided_ms = decided_ms - CASE WHEN OLD.outcome IN ('approved', 'declined') AND OLD.duration_ms IS NOT NULL THEN OLD.duration_ms ELSE 0 END,
    timed = timed - CASE WHEN OLD.outcome IN ('approved', 'declined') AND OLD.duration_ms IS NOT NULL THEN 1 ELSE 0 END,
    approved_amount = approved_amount - CASE WHEN OLD.outcome = 'approved' THEN COALESCE((SELECT amount_fen FROM routing_runs WHERE id = OLD.run_id), 0) ELSE 0 END
  WHERE partner_code = OLD.partner_code;
END;
--@end
--@postgres
CREATE FUNCTION zhudai_routing_stats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
  UPDATE partner_routing_stats SET
    attempts = attempts - CASE WHEN OLD.outcome <> 'skipped' THEN 1 ELSE 0 END,
    approved = approved - CASE WHEN OLD.outcome = 'approved' THEN 1 ELSE 0 END,
    declined = declined - CASE WHEN OLD.outcome = 'declined' THEN 1 ELSE 0 END,
    timeouts = timeouts - CASE WHEN OLD.outcome = 'timeout' THEN 1 ELSE 0 END,
    errors = errors - CASE WHEN OLD.outcome = 'error' THEN 1 ELSE 0 END,
    pending = pending - CASE WHEN OLD.outcome = 'pending' THEN 1 ELSE 0 END,
    decided_ms = decided_ms - CASE WHEN OLD.outcome IN ('approved', 'declined') AND OLD.duration_ms IS NOT NULL THEN OLD.duration_ms ELSE 0 END,
    timed = timed - CASE WHEN OLD.outcome IN ('approved', 'declined') AND OLD.duration_ms IS NOT NULL THEN 1 ELSE 0 END,
    approved_amount = approved_amount - CASE WHEN OLD.outcome = 'approved' THEN COALESCE((SELECT amount_fen FROM routing_runs WHERE id = OLD.run_id), 0) ELSE 0 END
  WHERE partner_code = OLD.partner_code;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
  INSERT INTO partner_routing_stats (partner_code) VALUES (NEW.partner_code)
      ON CONFLICT (partner_code) DO NOTHING;
  UPDATE partner_routing_stats SET
    attempts = attempts + CASE WHEN NEW.outcome <> 'skipped' THEN 1 ELSE 0 END,
    approved = approved + CASE WHEN NEW.outcome = 'approved' THEN 1 ELSE 0 END,
    declined = declined + CASE WHEN NEW.outcome = 'declined' THEN 1 ELSE 0 END,
    timeouts = timeouts + CASE WHEN NEW.outcome = 'timeout' THEN 1 ELSE 0 END,
    errors = errors + CASE WHEN NEW.outcome = 'error' THEN 1 ELSE 0 END,
    pending = pending + CASE WHEN NEW.outcome = 'pending' THEN 1 ELSE 0 END,
    decided_ms = decided_ms + CASE WHEN NEW.outcome IN ('approved', 'declined') AND NEW.duration_ms IS NOT NULL THEN NEW.duration_ms ELSE 0 END,
    timed = timed + CASE WHEN NEW.outcome IN ('approved', 'declined') AND NEW.duration_ms IS NOT NULL THEN 1 ELSE 0 END,
    approved_amount = approved_amount + CASE WHEN NEW.outcome = 'approved' THEN COALESCE((SELECT amount_fen FROM routing_runs WHERE id = NEW.run_id), 0) ELSE 0 END
  WHERE partner_code = NEW.partner_code;
  END IF;
  RETURN NULL;
END;
$$;
CREATE TRIGGER routing_steps_stats AFTER INSERT OR DELETE OR UPDATE OF run_id, partner_code, outcome, duration_ms
    ON routing_steps FOR EACH ROW EXECUTE FUNCTION zhudai_routing_stats();
--@end
