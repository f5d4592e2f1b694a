/**
 * The license service's per-build decisions as stored procedures, so that each is one statement
 * (one `CALL`, one round trip) instead of a transaction of five to seven:
 * - `perry_authorize_submission`: the common case of authorization by license key (the license
 *   row locked, its idempotency key, upload size, device binding, monthly quota and hourly limit
 *   checked, the reservation inserted, committed). It accepts, finds the duplicate, or answers
 *   `invalid` (no such key) or `refer`: nothing reserved, and the service's own transaction decides
 *   and words the refusal (services/license/src/authorize.ts holds the same rules).
 * - `perry_settle_publish`: a succeeded job's pending reservation settled and its publish counted,
 *   creating the period's counter row when it is the license's first publish of the month.
 *
 * Both run with the caller's privileges (`SQL SECURITY INVOKER`); the hub's MySQL user needs
 * `CREATE ROUTINE` and `ALTER ROUTINE` to install them and `EXECUTE` to call them. A user without
 * them still runs the hub: the steps are skipped, and the service, finding no procedure, uses
 * its transactions (as it does on a database that cannot compare the procedures' parameters with
 * its columns). A license key is
 * compared whole through its SHA-256, as the service compares it in constant time: the index
 * lookup follows the column's collation, which would also match other letter case.
 */
import type { MigrationStep } from './steps.js';

export const name = 'license_procedures';

export const statements: MigrationStep[] = [
  { optionalRoutine: 'DROP PROCEDURE IF EXISTS perry_authorize_submission' },
  {
    optionalRoutine: `CREATE PROCEDURE perry_authorize_submission(
    IN p_license_key VARCHAR(255),
    IN p_job_id VARCHAR(64),
    IN p_project_id VARCHAR(255),
    IN p_idempotency_key VARCHAR(255),
    IN p_declared_bytes BIGINT,
    IN p_self_hosted BOOLEAN,
    IN p_now BIGINT,
    IN p_period VARCHAR(7),
    IN p_grace_since BIGINT,
    IN p_hour_since BIGINT,
    IN p_expires_at BIGINT,
    IN p_instance_id VARCHAR(128),
    IN p_free_max_bytes BIGINT,
    IN p_free_monthly INT,
    IN p_free_hourly INT,
    IN p_pro_max_bytes BIGINT,
    IN p_pro_monthly INT,
    IN p_pro_hourly INT)
  SQL SECURITY INVOKER
  MODIFIES SQL DATA
  proc: BEGIN
    DECLARE v_key VARCHAR(64) DEFAULT NULL;
    DECLARE v_tier VARCHAR(8);
    DECLARE v_account VARCHAR(36);
    DECLARE v_device_bound BOOLEAN;
    DECLARE v_project VARCHAR(255);
    DECLARE v_job VARCHAR(64) DEFAULT NULL;
    DECLARE v_bound BOOLEAN DEFAULT FALSE;
    DECLARE v_publishes BIGINT;
    DECLARE v_in_flight BIGINT;
    DECLARE v_last_hour BIGINT;
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
      ROLLBACK;
      RESIGNAL;
    END;
    START TRANSACTION;
    SELECT licenseKey, IF(BINARY tier = 'pro', 'pro', 'free'), account_id, COALESCE(device_bound, FALSE), project_bundle_id
      INTO v_key, v_tier, v_account, v_device_bound, v_project
      FROM licenses WHERE licenseKey = p_license_key FOR UPDATE;
    IF v_key IS NULL OR SHA2(v_key, 256) <> SHA2(p_license_key, 256) THEN
      ROLLBACK;
      SELECT 'invalid' AS verdict;
      LEAVE proc;
    END IF;
    IF p_idempotency_key IS NOT NULL THEN
      SELECT id INTO v_job FROM builds
        WHERE licenseKey = v_key AND idempotency_key = p_idempotency_key
          AND BINARY idempotency_key = BINARY p_idempotency_key
        LIMIT 1;
      IF v_job IS NOT NULL THEN
        ROLLBACK;
        SELECT 'duplicate' AS verdict, v_key AS license_key, v_job AS job_id;
        LEAVE proc;
      END IF;
    END IF;
    IF p_declared_bytes IS NOT NULL AND p_declared_bytes > IF(v_tier = 'pro', p_pro_max_bytes, p_free_max_bytes) THEN
      ROLLBACK;
      SELECT 'refer' AS verdict;
      LEAVE proc;
    END IF;
    IF NOT p_self_hosted THEN
      -- Self-hosted hubs have no accounts to log in to: no binding, no quotas.
      IF v_device_bound AND (v_account IS NULL OR v_account = '') AND p_project_id <> '' THEN
        IF v_project IS NULL OR v_project = '' THEN
          UPDATE licenses SET project_bundle_id = p_project_id WHERE licenseKey = v_key;
          SET v_bound = TRUE;
        ELSEIF BINARY v_project <> BINARY p_project_id THEN
          ROLLBACK;
          SELECT 'refer' AS verdict;
          LEAVE proc;
        END IF;
      END IF;
      SELECT
        (SELECT publishes FROM usage_counters WHERE license_key = v_key AND period = p_period),
        (SELECT COUNT(*) FROM submissions s WHERE s.license_key = v_key AND s.state = 'pending'
           AND (s.submitted_at > p_grace_since OR EXISTS (SELECT 1 FROM builds b WHERE b.id = s.job_id))),
        (SELECT COUNT(*) FROM submissions WHERE license_key = v_key AND state <> 'released' AND submitted_at > p_hour_since)
        INTO v_publishes, v_in_flight, v_last_hour;
      -- Pro with an account may exceed the quota: the overage is billed.
      IF (NOT (v_tier = 'pro' AND v_account IS NOT NULL AND v_account <> '')
            AND COALESCE(v_publishes, 0) + v_in_flight >= IF(v_tier = 'pro', p_pro_monthly, p_free_monthly))
         OR v_last_hour >= IF(v_tier = 'pro', p_pro_hourly, p_free_hourly) THEN
        ROLLBACK;
        SELECT 'refer' AS verdict;
        LEAVE proc;
      END IF;
    END IF;
    INSERT INTO submissions (job_id, license_key, account_id, submitted_at, state, bound_project, expires_at, instance_id)
      VALUES (p_job_id, v_key, v_account, p_now, 'pending', v_bound, p_expires_at, p_instance_id);
    COMMIT;
    SELECT 'accepted' AS verdict, v_key AS license_key, v_tier AS tier, v_account AS account_id;
  END`,
  },
  { optionalRoutine: 'DROP PROCEDURE IF EXISTS perry_settle_publish' },
  {
    optionalRoutine: `CREATE PROCEDURE perry_settle_publish(
    IN p_job_id VARCHAR(64),
    IN p_license_key VARCHAR(255),
    IN p_period VARCHAR(7))
  SQL SECURITY INVOKER
  MODIFIES SQL DATA
  BEGIN
    DECLARE v_settled INT DEFAULT 0;
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
      ROLLBACK;
      RESIGNAL;
    END;
    START TRANSACTION;
    UPDATE submissions SET state = 'done', outcome = 'succeeded'
      WHERE job_id = p_job_id AND state = 'pending' AND license_key = p_license_key;
    SET v_settled = ROW_COUNT();
    IF v_settled > 0 THEN
      INSERT INTO usage_counters (license_key, period, publishes, deep_verifies) VALUES (p_license_key, p_period, 1, 0)
        ON DUPLICATE KEY UPDATE publishes = publishes + 1;
    END IF;
    COMMIT;
    SELECT v_settled AS settled;
  END`,
  },
];
