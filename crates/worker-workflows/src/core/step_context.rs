//! What a step's closure learns about the attempt it runs: the step's name, which step of
//! that name it is (`count`), the attempt, and the config the engine resolved for it
//! (its defaults merged with the step's own). Decoded from the context object the engine
//! passes to each attempt, and resolved the same way for engines that have none.

use crate::core::duration;
use crate::core::step_config::{Backoff, EngineStepConfig, DEFAULT_RETRY_LIMIT};
use serde_json::Value;
use std::time::Duration;

/// The local engine's default base delay for a step without config (its own, not the
/// documented 10 seconds).
pub const ENGINE_DEFAULT_DELAY: Duration = Duration::from_secs(1);
/// The local engine's default timeout of each attempt.
pub const ENGINE_DEFAULT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// What a step closure knows about the attempt it is running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepContext {
    /// The step's name.
    pub name: String,
    /// Which step of this name it is in the run: 1 for the first `step.run("x", …)`,
    /// 2 for the second one named "x", …
    pub count: u32,
    /// 1 on the first attempt, 2 on the first retry, … (counted across replays).
    pub attempt: u32,
    /// The config the engine runs the step with.
    pub config: ResolvedStepConfig,
}

/// A step's config as the engine resolved it: its defaults, overridden by the step's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedStepConfig {
    /// The timeout of each attempt (`None` if the engine reported one that does not read
    /// as a duration).
    pub timeout: Option<Duration>,
    /// The retries.
    pub retries: ResolvedRetries,
    /// The output is redacted from the engine's reports (`StepConfig::sensitive`).
    pub sensitive: bool,
}

/// A step's retries as the engine resolved them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRetries {
    /// Retries after the first attempt.
    pub limit: u32,
    /// The base delay; `None` when a delay function computes it.
    pub delay: Option<Duration>,
    /// How the delay grows from one retry to the next.
    pub backoff: Backoff,
}

impl Default for ResolvedStepConfig {
    /// The engine's defaults: 5 retries from 1 second, exponential, 10 minutes per attempt.
    fn default() -> Self {
        ResolvedStepConfig {
            timeout: Some(ENGINE_DEFAULT_TIMEOUT),
            retries: ResolvedRetries { limit: DEFAULT_RETRY_LIMIT, delay: Some(ENGINE_DEFAULT_DELAY), backoff: Backoff::Exponential },
            sensitive: false,
        }
    }
}

impl ResolvedStepConfig {
    /// The config an engine resolves from a step's own: the defaults, with every part
    /// the step sets replacing the default one (as the local engine merges them).
    pub fn resolve(config: Option<&EngineStepConfig>) -> Self {
        let mut resolved = ResolvedStepConfig::default();
        let Some(config) = config else { return resolved };
        if let Some(r) = &config.retries {
            resolved.retries = ResolvedRetries { limit: r.limit, delay: r.delay.map(Duration::from_millis), backoff: r.backoff };
        }
        if let Some(t) = config.timeout {
            resolved.timeout = Some(Duration::from_millis(t));
        }
        resolved.sensitive = config.sensitive;
        resolved
    }
}

impl StepContext {
    /// The `Idempotency-Key` for a call with a side effect made from this step of the
    /// instance life `instance` (`event.identity()`; see
    /// [`service::idempotency_key`](crate::core::service::idempotency_key)): the same on
    /// every attempt, replay and restart, since it holds the instance's identity and the
    /// step's name and count but not the attempt; different for a new instance that reuses
    /// the id after a delete.
    pub fn idempotency_key(&self, instance: &crate::core::service::InstanceIdentity) -> String {
        crate::core::service::idempotency_key(instance, &self.name, self.count)
    }

    /// The context of attempt `attempt` of the `count`-th step named `name`, resolved
    /// from the step's own config (for engines that pass no context object).
    pub fn resolved(name: &str, count: u32, attempt: u32, config: Option<&EngineStepConfig>) -> Self {
        StepContext { name: name.to_string(), count, attempt, config: ResolvedStepConfig::resolve(config) }
    }

    /// Reads the context object the engine passes to an attempt (as JSON text):
    /// `{step: {name, count}, attempt, config: {retries: {limit, delay?, backoff}, timeout, sensitive?}}`.
    /// Durations may be milliseconds or strings ("10 minutes"); a delay function leaves
    /// `delay` out. Whatever is missing or unreadable falls back to `fallback`, so a
    /// change in the engine's object never fails an attempt.
    pub fn from_engine_json(text: &str, fallback: StepContext) -> StepContext {
        // Read through `Value` (already compiled in for other uses) rather than a derived
        // deserializer per shape: this runs once per attempt and is small either way.
        let Ok(raw) = serde_json::from_str::<Value>(text) else { return fallback };
        let count = |v: &Value| v.as_u64().and_then(|n| u32::try_from(n).ok());
        let config = match raw.get("config").filter(|c| c.is_object()) {
            None => fallback.config,
            Some(c) => {
                let retries = &c["retries"];
                ResolvedStepConfig {
                    timeout: duration_of(&c["timeout"]),
                    retries: ResolvedRetries {
                        limit: count(&retries["limit"]).unwrap_or(fallback.config.retries.limit),
                        delay: duration_of(&retries["delay"]),
                        backoff: match retries["backoff"].as_str() {
                            Some("linear") => Backoff::Linear,
                            Some("exponential") => Backoff::Exponential,
                            // The engine treats a missing or unknown backoff as constant.
                            _ => Backoff::Constant,
                        },
                    },
                    sensitive: c["sensitive"].as_str() == Some("output"),
                }
            }
        };
        StepContext {
            name: raw["step"]["name"].as_str().map_or(fallback.name, str::to_string),
            count: count(&raw["step"]["count"]).unwrap_or(fallback.count),
            attempt: count(&raw["attempt"]).unwrap_or(fallback.attempt),
            config,
        }
    }
}

/// A duration as the engine reports it: milliseconds or a string it parsed.
fn duration_of(value: &Value) -> Option<Duration> {
    match value {
        Value::Number(n) => n.as_f64().filter(|ms| ms.is_finite() && *ms >= 0.0).map(|ms| Duration::from_millis(ms as u64)),
        Value::String(text) => duration::parse(text).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::step_config::{Retries, StepConfig};

    fn fallback() -> StepContext {
        StepContext::resolved("fallback", 1, 1, None)
    }

    #[test]
    fn reads_the_engines_context_with_its_default_config() {
        // As the local engine passes it for a step without config.
        let text = r#"{"step":{"name":"charge","count":2},"attempt":3,"config":{"retries":{"limit":5,"backoff":"exponential","delay":1000},"timeout":"10 minutes"}}"#;
        let ctx = StepContext::from_engine_json(text, fallback());
        assert_eq!(ctx, StepContext { name: "charge".into(), count: 2, attempt: 3, config: ResolvedStepConfig::default() });
    }

    #[test]
    fn reads_milliseconds_strings_a_dynamic_delay_and_sensitive() {
        let text = r#"{"step":{"name":"b","count":1},"attempt":1,"config":{"retries":{"limit":2,"backoff":"constant"},"timeout":30000,"sensitive":"output"}}"#;
        let ctx = StepContext::from_engine_json(text, fallback());
        assert_eq!(
            ctx.config,
            ResolvedStepConfig {
                timeout: Some(Duration::from_secs(30)),
                retries: ResolvedRetries { limit: 2, delay: None, backoff: Backoff::Constant },
                sensitive: true,
            }
        );
        let text = r#"{"step":{"name":"b","count":1},"attempt":1,"config":{"retries":{"limit":1,"delay":"5 seconds"},"timeout":"1 hour"}}"#;
        let ctx = StepContext::from_engine_json(text, fallback());
        assert_eq!(ctx.config.retries, ResolvedRetries { limit: 1, delay: Some(Duration::from_secs(5)), backoff: Backoff::Constant });
        assert_eq!(ctx.config.timeout, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn anything_missing_or_unreadable_falls_back() {
        assert_eq!(StepContext::from_engine_json("not json", fallback()), fallback());
        let ctx = StepContext::from_engine_json(r#"{"attempt":4}"#, fallback());
        assert_eq!((ctx.name.as_str(), ctx.count, ctx.attempt), ("fallback", 1, 4));
        assert_eq!(ctx.config, ResolvedStepConfig::default());
        let ctx = StepContext::from_engine_json(r#"{"config":{"timeout":"soon"}}"#, fallback());
        assert_eq!(ctx.config.timeout, None);
    }

    #[test]
    fn resolving_a_steps_own_config_replaces_each_part_it_sets() {
        let config = StepConfig::new().retries(Retries::new(2).delay("3 seconds")).to_engine().unwrap();
        let resolved = ResolvedStepConfig::resolve(Some(&config));
        assert_eq!(resolved.retries, ResolvedRetries { limit: 2, delay: Some(Duration::from_secs(3)), backoff: Backoff::Exponential });
        assert_eq!(resolved.timeout, Some(ENGINE_DEFAULT_TIMEOUT));
        let config = StepConfig::new().timeout("5 seconds").sensitive().to_engine().unwrap();
        let resolved = ResolvedStepConfig::resolve(Some(&config));
        assert_eq!((resolved.timeout, resolved.sensitive), (Some(Duration::from_secs(5)), true));
        assert_eq!(resolved.retries, ResolvedStepConfig::default().retries);
        let dynamic = StepConfig::new().retries(Retries::new(1).delay_fn(|_, _| Duration::ZERO)).to_engine().unwrap();
        assert_eq!(ResolvedStepConfig::resolve(Some(&dynamic)).retries.delay, None);
    }
}
