//! Flink's checkpoint, restart and recovery keys, read into the runtime's settings.
//!
//! Both spellings are accepted where Flink has two (2.x `execution.checkpointing.dir`, 1.x
//! `state.checkpoints.dir`); the 2.x one wins. A key eddy does not implement is refused by
//! name rather than ignored, so that nobody believes a job is protected in a way it is not.

use std::collections::BTreeMap;
use std::time::Duration;

use kernel::config::{
    CheckpointConfig, CheckpointRetention, CheckpointingMode, RecoverySettings, RestartStrategy,
};

use crate::error::{Location, PlanError};
use crate::planner::{bool_setting, duration_setting, positive_setting, setting};

const INTERVAL: &str = "execution.checkpointing.interval";
const MODE: &str = "execution.checkpointing.mode";
const TIMEOUT: &str = "execution.checkpointing.timeout";
const MIN_PAUSE: &str = "execution.checkpointing.min-pause";
const MAX_CONCURRENT: &str = "execution.checkpointing.max-concurrent-checkpoints";
const TOLERABLE: &str = "execution.checkpointing.tolerable-failed-checkpoints";
const RETENTION: &str = "execution.checkpointing.externalized-checkpoint-retention";
const DIR: [&str; 2] = ["execution.checkpointing.dir", "state.checkpoints.dir"];
const SAVEPOINT_DIR: [&str; 2] = [
    "execution.checkpointing.savepoint-dir",
    "state.savepoints.dir",
];
const NUM_RETAINED: [&str; 2] = [
    "execution.checkpointing.num-retained",
    "state.checkpoints.num-retained",
];
const RECOVERY_PATH: [&str; 2] = ["execution.state-recovery.path", "execution.savepoint.path"];
const IGNORE_UNCLAIMED: [&str; 2] = [
    "execution.state-recovery.ignore-unclaimed-state",
    "execution.savepoint.ignore-unclaimed-state",
];
const CLAIM_MODE: &str = "execution.state-recovery.claim-mode";

/// Keys that change what a checkpoint guarantees and that eddy does not implement: set to
/// anything but their default they are refused.
const UNSUPPORTED: [(&str, &str); 4] = [
    ("execution.checkpointing.unaligned.enabled", "false"),
    ("execution.checkpointing.unaligned", "false"),
    ("execution.checkpointing.aligned-checkpoint-timeout", "0"),
    ("execution.checkpointing.storage", "filesystem"),
];

fn error(msg: String) -> PlanError {
    PlanError::at(msg, Location::default())
}

/// The first of `keys` that is set, and its value.
fn either<'a>(
    settings: &'a BTreeMap<String, String>,
    keys: [&'a str; 2],
) -> Option<(&'a str, &'a str)> {
    keys.iter()
        .find_map(|k| settings.get(*k).map(|v| (*k, v.as_str())))
}

/// The checkpointing of the job: `None` unless `execution.checkpointing.interval` is set to
/// a positive duration or a savepoint directory is set (then the job takes the savepoint
/// it is stopped with, and periodic checkpoints only with an interval).
pub(crate) fn checkpoint_config(
    settings: &BTreeMap<String, String>,
    job_dir_default: impl FnOnce() -> String,
) -> Result<Option<CheckpointConfig>, PlanError> {
    for (key, default) in UNSUPPORTED {
        if let Some(v) = settings.get(key) {
            let is_default = v.trim().eq_ignore_ascii_case(default)
                || (default == "0" && duration_setting(settings, key)? == Some(0));
            if !is_default {
                return Err(error(format!(
                    "'{key}' = '{v}' is not supported: eddy takes aligned checkpoints into \
                     its checkpoint directory (execution.checkpointing.dir)"
                )));
            }
        }
    }
    let interval = duration_setting(settings, INTERVAL)?.unwrap_or(0);
    let savepoint_dir = either(settings, SAVEPOINT_DIR)
        .map(|(_, v)| v.trim().to_string())
        .filter(|d| !d.is_empty());
    if interval <= 0 && savepoint_dir.is_none() {
        return Ok(None);
    }
    let mode = match settings.get(MODE).map(|v| v.trim().to_ascii_uppercase()) {
        None => CheckpointingMode::ExactlyOnce,
        Some(m) if m == "EXACTLY_ONCE" => CheckpointingMode::ExactlyOnce,
        Some(m) if m == "AT_LEAST_ONCE" => CheckpointingMode::AtLeastOnce,
        Some(_) => {
            return Err(error(format!(
                "'{MODE}' = '{}' is no checkpointing mode; use EXACTLY_ONCE or AT_LEAST_ONCE",
                settings[MODE]
            )))
        }
    };
    let ms = |v: i64| Duration::from_millis(v.max(0) as u64);
    let timeout = duration_setting(settings, TIMEOUT)?.unwrap_or(10 * 60_000);
    if timeout <= 0 {
        return Err(error(format!("'{TIMEOUT}' must be a positive duration")));
    }
    let retention = match settings
        .get(RETENTION)
        .map(|v| v.trim().to_ascii_uppercase())
    {
        None => CheckpointRetention::NoExternalizedCheckpoints,
        Some(r) if r == "RETAIN_ON_CANCELLATION" => CheckpointRetention::RetainOnCancellation,
        Some(r) if r == "DELETE_ON_CANCELLATION" => CheckpointRetention::DeleteOnCancellation,
        Some(r) if r == "NO_EXTERNALIZED_CHECKPOINTS" => {
            CheckpointRetention::NoExternalizedCheckpoints
        }
        Some(_) => {
            return Err(error(format!(
                "'{RETENTION}' = '{}' is not RETAIN_ON_CANCELLATION, DELETE_ON_CANCELLATION \
                 or NO_EXTERNALIZED_CHECKPOINTS",
                settings[RETENTION]
            )))
        }
    };
    let tolerable = setting(
        settings,
        TOLERABLE,
        |v| v.trim().parse::<u32>().ok(),
        "a whole number",
    )?
    .unwrap_or(0);
    let num_retained = match either(settings, NUM_RETAINED) {
        None => 1,
        Some((key, _)) => positive_setting(settings, key)?.unwrap_or(1),
    };
    let dir = either(settings, DIR)
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(job_dir_default);
    let store_settings = location_settings(settings);
    Ok(Some(CheckpointConfig {
        interval: (interval > 0).then(|| ms(interval)),
        mode,
        timeout: ms(timeout),
        min_pause: ms(duration_setting(settings, MIN_PAUSE)?.unwrap_or(0)),
        max_concurrent: positive_setting(settings, MAX_CONCURRENT)?.unwrap_or(1),
        tolerable_failures: tolerable,
        dir,
        store_settings,
        num_retained,
        savepoint_dir,
        retention,
    }))
}

/// The settings of a checkpoint location (`s3.*`).
fn location_settings(settings: &BTreeMap<String, String>) -> Vec<(String, String)> {
    settings
        .iter()
        .filter(|(k, _)| k.starts_with("s3."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Where the run resumes from, if `execution.state-recovery.path` is set.
pub(crate) fn recovery_settings(
    settings: &BTreeMap<String, String>,
) -> Result<Option<RecoverySettings>, PlanError> {
    if let Some(mode) = settings.get(CLAIM_MODE) {
        if !mode.trim().eq_ignore_ascii_case("CLAIM") {
            return Err(error(format!(
                "'{CLAIM_MODE}' = '{mode}' is not supported: eddy resumes a checkpoint in \
                 CLAIM mode (the restored job continues in the checkpoint's job directory)"
            )));
        }
    }
    let Some((_, path)) = either(settings, RECOVERY_PATH) else {
        return Ok(None);
    };
    let allow = match either(settings, IGNORE_UNCLAIMED) {
        None => false,
        Some((key, _)) => bool_setting(settings, key)?.unwrap_or(false),
    };
    Ok(Some(RecoverySettings {
        path: path.trim().to_string(),
        allow_non_restored_state: allow,
        store_settings: location_settings(settings),
    }))
}

/// The restart strategy: `restart-strategy.type`, by default `exponential-delay` when
/// checkpointing is on and none otherwise, with Flink's defaults for every parameter.
pub(crate) fn restart_strategy(
    settings: &BTreeMap<String, String>,
    checkpointing: bool,
) -> Result<RestartStrategy, PlanError> {
    const TYPE: &str = "restart-strategy.type";
    let kind = match settings.get(TYPE) {
        Some(v) => v.trim().to_ascii_lowercase(),
        None if checkpointing => "exponential-delay".into(),
        None => "none".into(),
    };
    let dur = |key: &str, default_ms: i64| -> Result<Duration, PlanError> {
        let v = duration_setting(settings, key)?.unwrap_or(default_ms);
        Ok(Duration::from_millis(v.max(0) as u64))
    };
    let count = |key: &str, default: u32| -> Result<u32, PlanError> {
        Ok(setting(
            settings,
            key,
            |v| v.trim().parse::<u32>().ok(),
            "a whole number",
        )?
        .unwrap_or(default))
    };
    let float = |key: &str, default: f64| -> Result<f64, PlanError> {
        Ok(setting(
            settings,
            key,
            |v| {
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && *f >= 0.0)
            },
            "a number",
        )?
        .unwrap_or(default))
    };
    Ok(match kind.as_str() {
        "none" | "off" | "disable" => RestartStrategy::None,
        "fixed-delay" | "fixeddelay" => RestartStrategy::FixedDelay {
            attempts: count("restart-strategy.fixed-delay.attempts", 1)?,
            delay: dur("restart-strategy.fixed-delay.delay", 1000)?,
        },
        "failure-rate" | "failurerate" => RestartStrategy::FailureRate {
            max_failures: count("restart-strategy.failure-rate.max-failures-per-interval", 1)?,
            interval: dur(
                "restart-strategy.failure-rate.failure-rate-interval",
                60_000,
            )?,
            delay: dur("restart-strategy.failure-rate.delay", 1000)?,
        },
        "exponential-delay" | "exponentialdelay" => {
            const P: &str = "restart-strategy.exponential-delay";
            let multiplier = float(&format!("{P}.backoff-multiplier"), 1.5)?;
            if multiplier < 1.0 {
                return Err(error(format!(
                    "'{P}.backoff-multiplier' must be at least 1.0"
                )));
            }
            let jitter = float(&format!("{P}.jitter-factor"), 0.1)?;
            if jitter > 1.0 {
                return Err(error(format!(
                    "'{P}.jitter-factor' must be within 0.0..=1.0"
                )));
            }
            RestartStrategy::ExponentialDelay {
                initial_backoff: dur(&format!("{P}.initial-backoff"), 1000)?,
                max_backoff: dur(&format!("{P}.max-backoff"), 60_000)?,
                multiplier,
                reset_threshold: dur(&format!("{P}.reset-backoff-threshold"), 3_600_000)?,
                jitter,
                attempts: count(&format!("{P}.attempts-before-reset-backoff"), u32::MAX)?,
            }
        }
        other => {
            return Err(error(format!(
                "'{TYPE}' = '{other}' is no restart strategy; use none, fixed-delay, \
                 failure-rate or exponential-delay"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn checkpointing_follows_flinks_keys_and_defaults() {
        let none = checkpoint_config(&settings(&[]), || "d".into()).unwrap();
        assert!(none.is_none());
        let stop_only = settings(&[("state.savepoints.dir", "/tmp/sp")]);
        let c = checkpoint_config(&stop_only, || "d".into())
            .unwrap()
            .unwrap();
        assert_eq!(
            c.interval, None,
            "a savepoint directory alone takes no periodic ones"
        );
        assert_eq!(c.savepoint_dir.as_deref(), Some("/tmp/sp"));
        let s = settings(&[
            (INTERVAL, "500 ms"),
            ("state.checkpoints.dir", "file:///tmp/x"),
            ("state.checkpoints.num-retained", "3"),
        ]);
        let c = checkpoint_config(&s, || "d".into()).unwrap().unwrap();
        assert_eq!(c.interval, Some(Duration::from_millis(500)));
        assert_eq!(c.mode, CheckpointingMode::ExactlyOnce);
        assert_eq!(c.timeout, Duration::from_secs(600));
        assert_eq!(c.dir, "file:///tmp/x");
        assert_eq!(c.num_retained, 3);
        assert_eq!(c.max_concurrent, 1);
        assert_eq!(c.retention, CheckpointRetention::NoExternalizedCheckpoints);
        assert_eq!(
            restart_strategy(&s, true).unwrap(),
            RestartStrategy::ExponentialDelay {
                initial_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(60),
                multiplier: 1.5,
                reset_threshold: Duration::from_secs(3600),
                jitter: 0.1,
                attempts: u32::MAX,
            }
        );
        assert_eq!(restart_strategy(&s, false).unwrap(), RestartStrategy::None);
    }

    #[test]
    fn keys_eddy_does_not_implement_are_refused_by_name() {
        let s = settings(&[
            (INTERVAL, "1 s"),
            ("execution.checkpointing.unaligned.enabled", "true"),
        ]);
        let e = checkpoint_config(&s, || "d".into())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("execution.checkpointing.unaligned.enabled"),
            "{e}"
        );
        let s = settings(&[(INTERVAL, "1 s"), (MODE, "SOMETIMES")]);
        let e = checkpoint_config(&s, || "d".into())
            .unwrap_err()
            .to_string();
        assert!(e.contains("EXACTLY_ONCE"), "{e}");
        let s = settings(&[("restart-strategy.type", "forever")]);
        assert!(restart_strategy(&s, true).is_err());
        let s = settings(&[(CLAIM_MODE, "NO_CLAIM"), (RECOVERY_PATH[0], "/x")]);
        assert!(recovery_settings(&s).is_err());
    }
}
