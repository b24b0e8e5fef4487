//! A Worker's workflows, as its `build.rs` registers them with `worker-workflows-build`:
//! what each is called ([`WorkflowSettings`], on the type through [`Registered`]), and the
//! table the shim's calls, the HTTP API, the queue and crons look workflows up in
//! ([`Registry`] of [`WorkflowSpec`]s). The generated file that
//! [`include_workflows!`](crate::include_workflows) brings in implements [`Registered`]
//! for every registered type and defines `WORKFLOWS`, the Worker's [`Registry`], and the
//! `run_workflow` export the shim's classes call.
//!
//! May depend on: `core`, `bridge`.

use crate::bridge::Workflow;
use crate::core::events::{self, EventProblem, EventSpec};
use crate::core::instance_options::Retention;
use crate::core::validate::{typed_params, ParamsMismatch};

/// How a workflow is known to the engine and this Worker: what `build.rs` registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkflowSettings {
    /// The workflow's name: in `wrangler.jsonc`, in the HTTP API's paths, in the engine.
    pub name: &'static str,
    /// The JS class the shim exports for it, also the name of the Rust type.
    pub class_name: &'static str,
    /// The Workflow binding in the Worker's env (`ORDER_WORKFLOW`).
    pub binding: &'static str,
    /// How long the engine keeps a completed instance when a create does not say (a
    /// duration such as `"7 days"`; `None`: the account's default).
    pub success_retention: Option<&'static str>,
    /// The same for an errored or terminated instance.
    pub error_retention: Option<&'static str>,
    /// The cron expressions (as in `wrangler.jsonc` `triggers.crons`) each of whose ticks
    /// starts an instance `cron-{name}-{scheduledTime}` with params `{scheduledTime, cron}`.
    pub crons: &'static [&'static str],
    /// A var that must be `"true"` for this workflow to exist in a deployment (a
    /// development probe): elsewhere every route that names it answers as if it were not
    /// registered, and a run the engine starts anyway fails at once.
    pub enabled_by: Option<&'static str>,
    /// The engine's own cron schedules (wrangler.jsonc `schedules` on the workflow): the
    /// engine starts an instance on each tick; its event's [`schedule`] says which.
    ///
    /// [`schedule`]: crate::bridge::WorkflowEvent::schedule
    pub schedules: &'static [&'static str],
    /// At most this many instances run at once (`concurrency.limit`); the engine queues
    /// the rest.
    pub concurrency: Option<u32>,
    /// At most this many steps per instance (`limits.steps`).
    pub step_limit: Option<u32>,
    /// The region the engine is asked to run the instances this Worker creates near
    /// (`locationHint` on every create through this library).
    pub location_hint: Option<&'static str>,
    /// Where the instances run and keep their data (`jurisdiction`).
    pub jurisdiction: Option<&'static str>,
}

impl WorkflowSettings {
    /// Settings with a name and class, the binding the class name implies
    /// (`OrderWorkflow` → `ORDER_WORKFLOW` is for build.rs to derive; here it is empty
    /// until [`binding`](Self::binding) sets it), and nothing else.
    pub const fn new(name: &'static str, class_name: &'static str) -> Self {
        WorkflowSettings {
            name,
            class_name,
            binding: "",
            success_retention: None,
            error_retention: None,
            crons: &[],
            enabled_by: None,
            schedules: &[],
            concurrency: None,
            step_limit: None,
            location_hint: None,
            jurisdiction: None,
        }
    }

    /// The Workflow binding's name.
    pub const fn binding(mut self, binding: &'static str) -> Self {
        self.binding = binding;
        self
    }
}

/// A workflow type registered in `build.rs`: its settings. The code
/// [`include_workflows!`](crate::include_workflows) brings in implements it for every
/// registered type. A workflow used only in tests implements it by hand:
/// `impl Registered for Probe { const SETTINGS: WorkflowSettings = WorkflowSettings::new("probe", "Probe"); }`.
pub trait Registered: Workflow {
    /// The workflow's name, class, binding and defaults.
    const SETTINGS: WorkflowSettings;
}

/// One registered workflow, as the Worker looks it up: its settings, and what depends on
/// its types (events, params, the run).
#[derive(Clone, Copy)]
pub struct WorkflowSpec {
    /// The workflow's name (`settings.name`).
    pub name: &'static str,
    /// The shim's class (`settings.class_name`).
    pub class_name: &'static str,
    /// The Workflow binding (`settings.binding`).
    pub binding: &'static str,
    /// Everything `build.rs` registered.
    pub settings: WorkflowSettings,
    /// The events it waits for ([`Workflow::EVENTS`]).
    pub events: &'static [EventSpec],
    /// The fields of its params holding URLs it fetches ([`Workflow::URL_PARAMS`]).
    pub url_params: &'static [&'static str],
    check_params: fn(&serde_json::Value) -> Result<(), ParamsMismatch>,
    #[cfg(target_arch = "wasm32")]
    pub(crate) run: crate::bridge::RunFn,
}

impl std::fmt::Debug for WorkflowSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowSpec").field("settings", &self.settings).field("url_params", &self.url_params).finish_non_exhaustive()
    }
}

fn check_params_of<W: Workflow>(params: &serde_json::Value) -> Result<(), ParamsMismatch> {
    typed_params::<W::Params>(params).map(drop)
}

impl WorkflowSpec {
    /// The entry of a registered workflow type.
    pub const fn of<W: Registered>() -> Self {
        WorkflowSpec {
            name: W::SETTINGS.name,
            class_name: W::SETTINGS.class_name,
            binding: W::SETTINGS.binding,
            settings: W::SETTINGS,
            events: W::EVENTS,
            url_params: W::URL_PARAMS,
            check_params: check_params_of::<W>,
            #[cfg(target_arch = "wasm32")]
            run: crate::bridge::run_boxed::<W>,
        }
    }

    /// Checks params against the workflow's typed params (strictly, as a create does).
    ///
    /// An object with a `$params` key is refused whatever the type accepts: it is the
    /// shape of the library's own envelopes (a callback, a child's parent, a cron's tick),
    /// which a run unwraps, so a caller could otherwise forge one and have params inside
    /// it that were never checked.
    pub fn check_params(&self, params: &serde_json::Value) -> Result<(), ParamsMismatch> {
        if params.get("$params").is_some() {
            return Err(ParamsMismatch("`$params` is reserved for the library's envelopes".into()));
        }
        (self.check_params)(params)
    }

    /// Checks an event against the events the workflow declares: its type, and its
    /// payload against that type's.
    pub fn check_event(&self, event_type: &str, payload: &serde_json::Value) -> Result<(), EventProblem> {
        events::check(self.events, event_type, payload)
    }

    /// The retention a create gets when it does not say (empty: the account's default).
    pub fn default_retention(&self) -> Retention {
        Retention::from_parts(self.settings.success_retention, self.settings.error_retention)
    }

    /// Whether this workflow exists in a deployment whose vars `var` reads: always, but
    /// for a development probe, only where its var is `"true"`.
    pub fn is_enabled(&self, var: impl Fn(&str) -> Option<String>) -> bool {
        match self.settings.enabled_by {
            Some(flag) => var(flag).as_deref() == Some("true"),
            None => true,
        }
    }
}

/// A Worker's workflows: the table every entry point looks them up in.
#[derive(Debug, Clone, Copy)]
pub struct Registry {
    workflows: &'static [WorkflowSpec],
}

impl Registry {
    /// The registry of these workflows (the generated `WORKFLOWS` is one).
    pub const fn new(workflows: &'static [WorkflowSpec]) -> Self {
        Registry { workflows }
    }

    /// Every registered workflow, in registration order.
    pub fn workflows(&self) -> &'static [WorkflowSpec] {
        self.workflows
    }

    /// The workflow with this name.
    pub fn by_name(&self, name: &str) -> Option<&'static WorkflowSpec> {
        self.workflows.iter().find(|w| w.name == name)
    }

    /// The workflow whose shim class this is.
    pub fn by_class(&self, class_name: &str) -> Option<&'static WorkflowSpec> {
        self.workflows.iter().find(|w| w.class_name == class_name)
    }

    /// The workflow with this name, if this deployment serves it (a development probe
    /// only where its var, read with `var`, is `"true"`).
    pub fn available(&self, name: &str, var: impl Fn(&str) -> Option<String>) -> Option<&'static WorkflowSpec> {
        self.by_name(name).filter(|spec| spec.is_enabled(var))
    }

    /// The workflow a cron expression starts.
    pub fn for_cron(&self, expression: &str) -> Option<&'static WorkflowSpec> {
        let expression = expression.trim();
        self.workflows.iter().find(|w| w.settings.crons.contains(&expression))
    }

    /// Everything wrong with the registry that build.rs could not see: names the engine
    /// refuses, duplicates, retention durations that do not parse or exceed the engine's
    /// limit. The generated registry has a test that asserts there is nothing.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (i, w) in self.workflows.iter().enumerate() {
            if w.name.is_empty() || w.name.len() > 64 {
                problems.push(format!("workflow name {:?}: 1 to 64 characters", w.name));
            }
            if w.binding.is_empty() {
                problems.push(format!("workflow {:?} has no binding", w.name));
            }
            for other in &self.workflows[i + 1..] {
                if other.name == w.name || other.class_name == w.class_name || other.binding == w.binding {
                    problems.push(format!("workflows {:?} and {:?} share a name, class or binding", w.name, other.name));
                }
            }
            if let Err(e) = w.default_retention().to_engine() {
                problems.push(format!("workflow {:?}: default retention: {e}", w.name));
            }
            for cron in w.settings.crons {
                if let Some(other) = self.workflows[..i].iter().find(|o| o.settings.crons.contains(cron)) {
                    problems.push(format!("cron {cron:?} starts both {:?} and {:?}", other.name, w.name));
                }
            }
        }
        problems
    }
}
