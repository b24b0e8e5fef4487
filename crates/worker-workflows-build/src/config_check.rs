//! Checks the workflows `build.rs` registers against what it cannot generate:
//! `wrangler.jsonc` (its `workflows` and `triggers.crons`) and, with one file per
//! workflow, the files of that folder. [`Workflows::generate`](crate::Workflows::generate)
//! fails the build naming every problem, with the exact JSON to paste into
//! `wrangler.jsonc` where an entry is missing or wrong.

use crate::Workflow;

/// One `workflows` entry of wrangler.jsonc.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfiguredWorkflow {
    /// Its `name`.
    pub name: String,
    /// Its `binding`.
    pub binding: String,
    /// Its `class_name`.
    pub class_name: String,
    /// The whole entry as written (its settings: `schedules`, `concurrency`, …).
    pub entry: serde_json::Value,
}

/// The settings of a `workflows` entry that registrations declare, normalised for
/// comparison (`schedules` as a list). Other keys (`script_name`, …) are the config's own.
const SETTINGS_KEYS: [&str; 5] = ["schedules", "concurrency", "limits", "default_retention", "jurisdiction"];

fn settings_of(entry: &serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    SETTINGS_KEYS
        .iter()
        .filter_map(|&key| {
            let value = entry.get(key)?;
            let value = match (key, value) {
                ("schedules", serde_json::Value::String(one)) => serde_json::json!([one.trim()]),
                ("schedules", serde_json::Value::Array(all)) => {
                    all.iter().map(|s| s.as_str().map_or(s.clone(), |s| s.trim().into())).collect::<Vec<_>>().into()
                }
                _ => value.clone(),
            };
            Some((key.to_string(), value))
        })
        .collect()
}

/// JSONC (comments, trailing commas) to plain JSON, leaving string contents alone.
pub fn strip_jsonc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if c == '\\' {
                if let Some(escaped) = chars.next() {
                    out.push(escaped);
                }
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            _ => out.push(c),
        }
    }
    remove_trailing_commas(&out)
}

fn remove_trailing_commas(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    let chars: Vec<char> = json.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        if c == ',' {
            let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            if matches!(next, Some('}') | Some(']')) {
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// The `workflows` entries of a wrangler.jsonc text.
pub fn configured_workflows(wrangler_jsonc: &str) -> Result<Vec<ConfiguredWorkflow>, String> {
    let config: serde_json::Value =
        serde_json::from_str(&strip_jsonc(wrangler_jsonc)).map_err(|e| format!("wrangler.jsonc is not valid JSONC: {e}"))?;
    let Some(list) = config.get("workflows") else {
        return Ok(Vec::new());
    };
    let list = list.as_array().ok_or("wrangler.jsonc: `workflows` must be an array")?;
    list.iter()
        .map(|w| {
            let field = |k: &str| {
                w.get(k)
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
                    .ok_or_else(|| format!("wrangler.jsonc: a `workflows` entry has no string `{k}`: {w}"))
            };
            Ok(ConfiguredWorkflow { name: field("name")?, binding: field("binding")?, class_name: field("class_name")?, entry: w.clone() })
        })
        .collect()
}

/// The `triggers.crons` of a wrangler.jsonc text.
pub fn configured_crons(wrangler_jsonc: &str) -> Result<Vec<String>, String> {
    let config: serde_json::Value =
        serde_json::from_str(&strip_jsonc(wrangler_jsonc)).map_err(|e| format!("wrangler.jsonc is not valid JSONC: {e}"))?;
    let Some(crons) = config.get("triggers").and_then(|t| t.get("crons")) else {
        return Ok(Vec::new());
    };
    crons
        .as_array()
        .ok_or("wrangler.jsonc: `triggers.crons` must be an array")?
        .iter()
        .map(|c| c.as_str().map(str::to_string).ok_or_else(|| format!("wrangler.jsonc: cron {c} is not a string")))
        .collect()
}

/// Every cron a workflow is registered with must be in wrangler.jsonc's `triggers.crons`
/// (or it never fires). A cron there that no workflow has is the Worker's own business
/// (its scheduled handler serves it), so it is no problem here.
pub fn cron_problems(workflows: &[Workflow], configured: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for w in workflows {
        for cron in &w.crons {
            if !configured.iter().any(|c| c.trim() == cron) {
                problems.push(format!(
                    "cron {cron:?} (starting {:?}) is registered in build.rs but not in wrangler.jsonc; add it to `triggers.crons`",
                    w.name
                ));
            }
        }
    }
    for (i, w) in workflows.iter().enumerate() {
        for cron in &w.crons {
            if let Some(other) = workflows[..i].iter().find(|o| o.crons.contains(cron)) {
                problems
                    .push(format!("cron {cron:?} is registered for both {:?} and {:?}: one tick starts one workflow", other.name, w.name));
            }
        }
    }
    problems
}

/// A `workflows` entry as one line of JSON to paste: `{ "name": …, "binding": …, "class_name": …, … }`.
/// Its keys in wrangler's usual order: name, binding, class name, then the settings.
pub fn entry_line(entry: &serde_json::Value) -> String {
    let Some(map) = entry.as_object() else { return entry.to_string() };
    let order = ["name", "binding", "class_name"].into_iter().chain(SETTINGS_KEYS);
    let mut fields: Vec<String> = order.filter_map(|k| map.get(k).map(|v| format!("{k:?}: {v}"))).collect();
    fields.extend(
        map.iter()
            .filter(|(k, _)| !["name", "binding", "class_name"].contains(&k.as_str()) && !SETTINGS_KEYS.contains(&k.as_str()))
            .map(|(k, v)| format!("{k:?}: {v}")),
    );
    format!("{{ {} }}", fields.join(", "))
}

/// The `workflows` entry of wrangler.jsonc for a workflow with only a name, class and
/// binding, as JSON to paste.
pub fn wrangler_entry(name: &str, class_name: &str, binding: &str) -> String {
    entry_line(&serde_json::json!({"name": name, "binding": binding, "class_name": class_name}))
}

/// Settings the engine would refuse or that cannot mean what they say: a concurrency
/// limit of 0, a step limit outside 1 to 25,000, an unknown location hint or jurisdiction,
/// a schedule that is not a cron expression of 5 fields.
pub fn settings_problems(workflows: &[Workflow]) -> Vec<String> {
    const HINTS: [&str; 11] = ["wnam", "weur", "enam", "eeur", "apac", "apac-ne", "apac-se", "oc", "sam", "afr", "me"];
    const JURISDICTIONS: [&str; 3] = ["eu", "fedramp", "us"];
    let mut problems = Vec::new();
    for w in workflows {
        if w.concurrency == Some(0) {
            problems.push(format!("workflow {:?}: a concurrency limit must be at least 1", w.name));
        }
        if let Some(steps) = w.step_limit.filter(|s| !(1..=25_000).contains(s)) {
            problems.push(format!("workflow {:?}: a step limit must be 1 to 25000, not {steps}", w.name));
        }
        if let Some(hint) = w.location_hint.as_deref().filter(|h| !HINTS.contains(h)) {
            problems.push(format!("workflow {:?}: location hint {hint:?} is none of {}", w.name, HINTS.join(", ")));
        }
        if let Some(j) = w.jurisdiction.as_deref().filter(|j| !JURISDICTIONS.contains(j)) {
            problems.push(format!("workflow {:?}: jurisdiction {j:?} is none of {}", w.name, JURISDICTIONS.join(", ")));
        }
        for schedule in &w.schedules {
            if schedule.split_whitespace().count() != 5 {
                problems.push(format!("workflow {:?}: schedule {schedule:?} is not a cron expression of 5 fields", w.name));
            }
        }
    }
    problems
}

/// Every disagreement between the registered workflows and wrangler.jsonc's `workflows`,
/// one message each, saying what to paste or remove.
pub fn mismatches(workflows: &[Workflow], configured: &[ConfiguredWorkflow]) -> Vec<String> {
    let mut problems = Vec::new();
    for w in workflows {
        let wanted = w.wrangler_entry();
        let expected = entry_line(&wanted);
        match configured.iter().find(|c| c.name == w.name) {
            None => problems.push(format!(
                "workflow {:?} is registered in build.rs but not in wrangler.jsonc; add this to its `workflows` array:\n    {expected}",
                w.name
            )),
            Some(c) if c.class_name != w.class_name || c.binding != w.binding || settings_of(&c.entry) != settings_of(&wanted) => {
                let mut written = serde_json::json!({"name": c.name, "binding": c.binding, "class_name": c.class_name});
                if let Some(map) = written.as_object_mut() {
                    map.extend(settings_of(&c.entry));
                }
                problems.push(format!(
                    "workflow {:?} in wrangler.jsonc is {} but build.rs registers it otherwise; replace that entry with:\n    {expected}",
                    w.name,
                    entry_line(&written)
                ))
            }
            Some(_) => {}
        }
    }
    for c in configured {
        if !workflows.iter().any(|w| w.name == c.name) {
            problems.push(format!(
                "workflow {:?} is in wrangler.jsonc but not registered in build.rs: register it there \
                 (.workflow(Workflow::new({:?}, {:?}))) or remove it from wrangler.jsonc",
                c.name, c.name, c.class_name
            ));
        }
    }
    problems
}

/// `[A-Za-z_][A-Za-z0-9_]*`: a name that is both a Rust and a JS identifier.
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `^[a-zA-Z0-9_][a-zA-Z0-9-_]*$`, 1 to 64 characters: a workflow name the engine takes.
fn is_workflow_name(s: &str) -> bool {
    let mut chars = s.chars();
    !s.is_empty()
        && s.len() <= 64
        && matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Names the registry cannot use: a workflow name the engine refuses (or, with one file
/// per workflow, that makes no Rust module), a class or binding that is not an
/// identifier, a duplicate.
pub fn registry_problems(workflows: &[Workflow], modules: bool) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, w) in workflows.iter().enumerate() {
        let module = w.name.replace('-', "_");
        if !is_workflow_name(&w.name) {
            problems.push(format!("workflow name {:?}: 1 to 64 letters, digits, '-' and '_', not starting with '-'", w.name));
        } else if modules && (!is_identifier(&module) || module.starts_with('_')) {
            problems
                .push(format!("workflow name {:?} makes no module name (its file would be {module}.rs): start it with a letter", w.name));
        }
        if !is_identifier(&w.class_name) {
            problems.push(format!("workflow {:?}: class name {:?} must be a Rust and JS identifier", w.name, w.class_name));
        }
        if !is_identifier(&w.binding) {
            problems.push(format!("workflow {:?}: binding {:?} must be an identifier", w.name, w.binding));
        }
        if let Some(var) = &w.enabled_by {
            if !is_identifier(var) {
                problems.push(format!("workflow {:?}: enabled_by var {var:?} must be an identifier", w.name));
            }
        }
        for other in &workflows[i + 1..] {
            if other.name == w.name
                || other.class_name == w.class_name
                || other.binding == w.binding
                || (modules && other.name.replace('-', "_") == module)
            {
                problems.push(format!("workflows {:?} and {:?} share a name, module, class or binding", w.name, other.name));
            }
        }
    }
    problems
}

/// With one file per workflow in `dir`: every registered workflow needs its file, and
/// every file there (other than mod.rs) a registration. `files` are the file names.
pub fn file_problems(workflows: &[Workflow], dir: &str, files: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for w in workflows {
        let file = format!("{}.rs", w.name.replace('-', "_"));
        if !files.contains(&file) {
            problems.push(format!(
                "workflow {:?} is registered in build.rs but {dir}/{file} is missing (it holds `pub struct {}`)",
                w.name, w.class_name
            ));
        }
    }
    for file in files.iter().filter(|f| f.ends_with(".rs") && *f != "mod.rs") {
        let module = file.trim_end_matches(".rs");
        if !workflows.iter().any(|w| w.name.replace('-', "_") == module) {
            problems.push(format!(
                "{dir}/{file} is not registered: add .workflow(Workflow::new({:?}, ..)) to build.rs",
                module.replace('_', "-")
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRANGLER: &str = r#"{
      // a comment with "quotes" and a url http://x//y
      "name": "w", /* block */
      "vars": {"URL": "https://a.example//b"},
      "workflows": [
        {"name": "order-processing", "binding": "ORDER_WORKFLOW", "class_name": "OrderWorkflow",},
      ],
    }"#;

    fn order() -> Vec<Workflow> {
        vec![Workflow::new("order-processing", "OrderWorkflow")]
    }

    fn w(name: &str, class: &str, binding: &str) -> Workflow {
        Workflow::new(name, class).binding(binding)
    }

    #[test]
    fn jsonc_comments_and_trailing_commas() {
        let json: serde_json::Value = serde_json::from_str(&strip_jsonc(WRANGLER)).unwrap();
        assert_eq!(json["vars"]["URL"], "https://a.example//b");
        assert_eq!(json["name"], "w");
    }

    #[test]
    fn agreement_has_no_mismatch() {
        let configured = configured_workflows(WRANGLER).unwrap();
        assert_eq!(configured[0].class_name, "OrderWorkflow");
        assert!(mismatches(&order(), &configured).is_empty());
        assert!(registry_problems(&order(), true).is_empty());
    }

    #[test]
    fn a_missing_or_wrong_entry_prints_the_json_to_paste() {
        let configured = configured_workflows(WRANGLER).unwrap();
        let extra = vec![order()[0].clone(), Workflow::new("approval", "ApprovalWorkflow")];
        let problems = mismatches(&extra, &configured);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("\"approval\" is registered in build.rs but not in wrangler.jsonc"), "{}", problems[0]);
        // The pasted line is exactly the entry wrangler needs.
        let pasted = problems[0].lines().last().unwrap().trim();
        let entry: serde_json::Value = serde_json::from_str(pasted).unwrap();
        assert_eq!(entry, serde_json::json!({"name": "approval", "binding": "APPROVAL_WORKFLOW", "class_name": "ApprovalWorkflow"}));

        let wrong_class = vec![w("order-processing", "OrderFlow", "ORDER_WORKFLOW")];
        let problems = mismatches(&wrong_class, &configured);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("replace that entry with"), "{}", problems[0]);
        let pasted: serde_json::Value = serde_json::from_str(problems[0].lines().last().unwrap().trim()).unwrap();
        assert_eq!(pasted["class_name"], "OrderFlow");

        let problems = mismatches(&[], &configured);
        assert!(problems.iter().any(|p| p.contains("\"order-processing\" is in wrangler.jsonc but not registered in build.rs")));
    }

    #[test]
    fn settings_go_into_the_entry_to_paste_and_a_difference_is_a_mismatch() {
        let cleanup = Workflow::new("daily-cleanup", "CleanupWorkflow")
            .retention("3 days", "30 days")
            .schedule("0 4 * * *")
            .concurrency(2)
            .step_limit(500)
            .jurisdiction("eu");
        let line = entry_line(&cleanup.wrangler_entry());
        assert_eq!(
            line,
            r#"{ "name": "daily-cleanup", "binding": "CLEANUP_WORKFLOW", "class_name": "CleanupWorkflow", "schedules": ["0 4 * * *"], "concurrency": {"limit":2}, "limits": {"steps":500}, "default_retention": {"error_retention":"30 days","success_retention":"3 days"}, "jurisdiction": "eu" }"#
        );
        let pasted = format!(r#"{{"workflows": [{line}]}}"#);
        assert!(mismatches(std::slice::from_ref(&cleanup), &configured_workflows(&pasted).unwrap()).is_empty(), "the pasted line agrees");
        // A string schedule is the same as a list of one.
        let one = pasted.replace(r#"["0 4 * * *"]"#, r#""0 4 * * *""#);
        assert!(mismatches(std::slice::from_ref(&cleanup), &configured_workflows(&one).unwrap()).is_empty());
        // Each setting that differs, or that wrangler.jsonc has and build.rs does not, is a mismatch.
        for changed in [
            pasted.replace(r#""limit":2"#, r#""limit":3"#),
            pasted.replace(r#""steps":500"#, r#""steps":501"#),
            pasted.replace(r#""eu""#, r#""us""#),
            pasted.replace(r#""3 days""#, r#""4 days""#),
            pasted.replace(r#""0 4 * * *""#, r#""0 5 * * *""#),
        ] {
            let problems = mismatches(std::slice::from_ref(&cleanup), &configured_workflows(&changed).unwrap());
            assert_eq!(problems.len(), 1, "{changed}");
            assert!(problems[0].ends_with(&line), "{}", problems[0]);
        }
        let bare = Workflow::new("daily-cleanup", "CleanupWorkflow");
        assert_eq!(mismatches(&[bare], &configured_workflows(&pasted).unwrap()).len(), 1, "settings only in wrangler.jsonc");
    }

    #[test]
    fn settings_the_engine_would_refuse_are_problems() {
        assert!(settings_problems(&[Workflow::new("a", "A").concurrency(1).step_limit(25_000).location_hint("weur").jurisdiction("us")])
            .is_empty());
        for bad in [
            Workflow::new("a", "A").concurrency(0),
            Workflow::new("a", "A").step_limit(0),
            Workflow::new("a", "A").step_limit(25_001),
            Workflow::new("a", "A").location_hint("mars"),
            Workflow::new("a", "A").jurisdiction("moon"),
            Workflow::new("a", "A").schedule("every day"),
        ] {
            assert_eq!(settings_problems(std::slice::from_ref(&bad)).len(), 1, "{bad:?}");
        }
    }

    #[test]
    fn registry_names_must_make_modules_classes_and_bindings() {
        assert_eq!(registry_problems(&[w("bad name", "X", "B")], true).len(), 1);
        assert_eq!(registry_problems(&[w("-lead", "X", "B")], true).len(), 1);
        assert_eq!(registry_problems(&[w("ok", "Not-Ident", "B")], true).len(), 1);
        assert_eq!(registry_problems(&[w("ok", "X", "1B")], true).len(), 1);
        assert_eq!(registry_problems(&[w("a-b", "X", "B"), w("a_b", "Y", "C")], true).len(), 1);
        assert!(registry_problems(&[w("a-b", "X", "B"), w("a_b", "Y", "C")], false).is_empty(), "modules only with one file per workflow");
        assert_eq!(registry_problems(&[w("1st", "X", "B")], true).len(), 1, "no module starts with a digit");
        assert!(registry_problems(&[w("1st", "X", "B")], false).is_empty());
        assert_eq!(registry_problems(&[w(&"w".repeat(65), "X", "B")], true).len(), 1);
    }

    #[test]
    fn every_workflow_has_its_file_and_every_file_its_registration() {
        let files = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert!(file_problems(&order(), "src/workflows", &files(&["mod.rs", "order_processing.rs"])).is_empty());
        let missing = file_problems(&order(), "src/workflows", &files(&["mod.rs"]));
        assert_eq!(missing.len(), 1);
        assert!(missing[0].contains("src/workflows/order_processing.rs is missing"), "{}", missing[0]);
        let stray = file_problems(&order(), "src/workflows", &files(&["mod.rs", "order_processing.rs", "invoice.rs"]));
        assert_eq!(stray.len(), 1);
        assert!(stray[0].contains("src/workflows/invoice.rs is not registered"), "{}", stray[0]);
    }

    #[test]
    fn crons_agree_or_are_named() {
        let wrangler = r#"{"triggers": {"crons": ["0 3 * * *", "*/5 * * * *"]}}"#;
        let configured = configured_crons(wrangler).unwrap();
        assert_eq!(configured, ["0 3 * * *", "*/5 * * * *"]);
        let cleanup = Workflow::new("daily-cleanup", "CleanupWorkflow").cron("0 3 * * *");
        // A cron no workflow has is the Worker's own (its scheduled handler serves it).
        assert!(cron_problems(std::slice::from_ref(&cleanup), &configured).is_empty());
        let problems = cron_problems(&[cleanup.clone(), Workflow::new("x", "X").cron("0 4 * * *")], &configured[..1]);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("\"0 4 * * *\" (starting \"x\") is registered in build.rs"), "{}", problems[0]);
        let twice = cron_problems(&[cleanup, Workflow::new("x", "X").cron("0 3 * * *")], &configured);
        assert!(twice[0].contains("registered for both"), "{twice:?}");
        assert!(configured_crons("{}").unwrap().is_empty());
    }
}
