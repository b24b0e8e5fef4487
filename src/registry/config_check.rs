//! Checks the registry (`src/registry/mod.rs`) against what it cannot generate:
//! `wrangler.jsonc` (its `workflows` and `triggers.crons`) and the workflow files in
//! `src/workflows/`. `build.rs` runs this and fails the build naming every problem,
//! with the exact JSON to paste into `wrangler.jsonc` where an entry is missing or wrong.
//! No dependencies beyond serde_json, since `build.rs` includes this file directly.

/// One `workflows` entry of wrangler.jsonc.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfiguredWorkflow {
    pub name: String,
    pub binding: String,
    pub class_name: String,
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
            Ok(ConfiguredWorkflow { name: field("name")?, binding: field("binding")?, class_name: field("class_name")? })
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

/// Every cron in wrangler.jsonc needs an entry in the registry's cron table (which
/// names the workflow it starts), and every entry there a cron in wrangler.jsonc.
pub fn cron_mismatches(registry: &[(&str, &str)], configured: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for cron in configured {
        if !registry.iter().any(|(c, _)| c == cron) {
            problems.push(format!("cron {cron:?} is in wrangler.jsonc `triggers.crons` but not in src/registry/mod.rs `CRONS` (which workflow should it start?)"));
        }
    }
    for (cron, workflow) in registry {
        if !configured.iter().any(|c| c == cron) {
            problems.push(format!(
                "cron {cron:?} (starting {workflow:?}) is in src/registry/mod.rs `CRONS` but not in wrangler.jsonc `triggers.crons`"
            ));
        }
    }
    problems
}

/// The `workflows` entry of wrangler.jsonc for a registry entry, as JSON to paste.
pub fn wrangler_entry(name: &str, class_name: &str, binding: &str) -> String {
    format!("{{ \"name\": {name:?}, \"binding\": {binding:?}, \"class_name\": {class_name:?} }}")
}

/// Every disagreement between the registry and wrangler.jsonc's `workflows`, one
/// message each, saying what to paste or remove.
pub fn mismatches(registry: &[(&str, &str, &str)], configured: &[ConfiguredWorkflow]) -> Vec<String> {
    let mut problems = Vec::new();
    for &(name, class_name, binding) in registry {
        let expected = wrangler_entry(name, class_name, binding);
        match configured.iter().find(|w| w.name == name) {
            None => problems.push(format!(
                "workflow {name:?} is in src/registry/mod.rs but not in wrangler.jsonc; add this to its `workflows` array:\n    {expected}"
            )),
            Some(w) if w.class_name != class_name || w.binding != binding => problems.push(format!(
                "workflow {name:?} in wrangler.jsonc is {} but src/registry/mod.rs says otherwise; replace that entry with:\n    {expected}",
                wrangler_entry(&w.name, &w.class_name, &w.binding)
            )),
            Some(_) => {}
        }
    }
    for w in configured {
        if !registry.iter().any(|&(name, _, _)| name == w.name) {
            problems.push(format!(
                "workflow {:?} is in wrangler.jsonc but not in src/registry/mod.rs `WORKFLOWS`: register it there \
                 (WorkflowSpec {{ name: {:?}, class_name: {:?}, binding: {:?} }}) or remove it from wrangler.jsonc",
                w.name, w.name, w.class_name, w.binding
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

/// Names the registry cannot use: a workflow name the engine refuses or that makes no
/// Rust module, a class or binding that is not an identifier, a duplicate.
pub fn registry_problems(registry: &[(&str, &str, &str)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, &(name, class_name, binding)) in registry.iter().enumerate() {
        let module = name.replace('-', "_");
        if name.is_empty() || name.len() > 64 || !is_identifier(&module) || module.starts_with('_') {
            problems.push(format!(
                "workflow name {name:?}: 1 to 64 letters, digits, '-' and '_', starting with a letter (it names the file src/workflows/{module}.rs)"
            ));
        }
        if !is_identifier(class_name) {
            problems.push(format!("workflow {name:?}: class_name {class_name:?} must be a Rust and JS identifier"));
        }
        if !is_identifier(binding) {
            problems.push(format!("workflow {name:?}: binding {binding:?} must be an identifier"));
        }
        for &(other, other_class, other_binding) in &registry[i + 1..] {
            if other.replace('-', "_") == module || other_class == class_name || other_binding == binding {
                problems.push(format!("workflows {name:?} and {other:?} share a name, module, class_name or binding"));
            }
        }
    }
    problems
}

/// Every registered workflow needs its file, and every file in src/workflows/ (other
/// than mod.rs) a registration. `files` are the file names in that folder.
pub fn file_problems(registry: &[(&str, &str, &str)], files: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for &(name, class_name, _) in registry {
        let file = format!("{}.rs", name.replace('-', "_"));
        if !files.contains(&file) {
            problems.push(format!(
                "workflow {name:?} is in src/registry/mod.rs but src/workflows/{file} is missing (it holds `pub struct {class_name}`)"
            ));
        }
    }
    for file in files.iter().filter(|f| f.ends_with(".rs") && *f != "mod.rs") {
        let module = file.trim_end_matches(".rs");
        if !registry.iter().any(|&(name, _, _)| name.replace('-', "_") == module) {
            problems.push(format!(
                "src/workflows/{file} is not registered: add a WorkflowSpec named {:?} to src/registry/mod.rs",
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

    fn order() -> Vec<(&'static str, &'static str, &'static str)> {
        vec![("order-processing", "OrderWorkflow", "ORDER_WORKFLOW")]
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
        assert!(registry_problems(&order()).is_empty());
    }

    #[test]
    fn a_missing_or_wrong_entry_prints_the_json_to_paste() {
        let configured = configured_workflows(WRANGLER).unwrap();
        let extra = vec![order()[0], ("approval", "ApprovalWorkflow", "APPROVAL_WORKFLOW")];
        let problems = mismatches(&extra, &configured);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("\"approval\" is in src/registry/mod.rs but not in wrangler.jsonc"));
        // The pasted line is exactly the entry wrangler needs.
        let pasted = problems[0].lines().last().unwrap().trim();
        let entry: serde_json::Value = serde_json::from_str(pasted).unwrap();
        assert_eq!(entry, serde_json::json!({"name": "approval", "binding": "APPROVAL_WORKFLOW", "class_name": "ApprovalWorkflow"}));

        let wrong_class = vec![("order-processing", "OrderFlow", "ORDER_WORKFLOW")];
        let problems = mismatches(&wrong_class, &configured);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("replace that entry with"), "{}", problems[0]);
        let pasted: serde_json::Value = serde_json::from_str(problems[0].lines().last().unwrap().trim()).unwrap();
        assert_eq!(pasted["class_name"], "OrderFlow");

        let problems = mismatches(&[], &configured);
        assert!(problems.iter().any(|p| p.contains("\"order-processing\" is in wrangler.jsonc but not in src/registry/mod.rs")));
    }

    #[test]
    fn registry_names_must_make_modules_classes_and_bindings() {
        assert_eq!(registry_problems(&[("bad name", "X", "B")]).len(), 1);
        assert_eq!(registry_problems(&[("-lead", "X", "B")]).len(), 1);
        assert_eq!(registry_problems(&[("ok", "Not-Ident", "B")]).len(), 1);
        assert_eq!(registry_problems(&[("ok", "X", "1B")]).len(), 1);
        assert_eq!(registry_problems(&[("a-b", "X", "B"), ("a_b", "Y", "C")]).len(), 1);
        assert_eq!(registry_problems(&[(&"w".repeat(65), "X", "B")]).len(), 1);
    }

    #[test]
    fn every_workflow_has_its_file_and_every_file_its_registration() {
        let files = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert!(file_problems(&order(), &files(&["mod.rs", "order_processing.rs"])).is_empty());
        let missing = file_problems(&order(), &files(&["mod.rs"]));
        assert_eq!(missing.len(), 1);
        assert!(missing[0].contains("src/workflows/order_processing.rs is missing"), "{}", missing[0]);
        let stray = file_problems(&order(), &files(&["mod.rs", "order_processing.rs", "invoice.rs"]));
        assert_eq!(stray.len(), 1);
        assert!(stray[0].contains("src/workflows/invoice.rs is not registered"), "{}", stray[0]);
    }

    #[test]
    fn crons_agree_or_are_named() {
        let wrangler = r#"{"triggers": {"crons": ["0 3 * * *", "*/5 * * * *"]}}"#;
        let configured = configured_crons(wrangler).unwrap();
        assert_eq!(configured, ["0 3 * * *", "*/5 * * * *"]);
        let problems = cron_mismatches(&[("0 3 * * *", "daily-cleanup")], &configured);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("\"*/5 * * * *\" is in wrangler.jsonc"));
        let problems = cron_mismatches(&[("0 3 * * *", "daily-cleanup"), ("0 4 * * *", "x")], &configured[..1]);
        assert!(problems[0].contains("\"0 4 * * *\" (starting \"x\") is in src/registry/mod.rs"));
        assert!(configured_crons("{}").unwrap().is_empty());
    }
}
