//! Keeps the three places that name a workflow in agreement: `wrangler.jsonc`'s
//! `workflows`, the classes `shim/index.mjs` exports, and the Rust registry
//! (`src/registry.rs`). `build.rs` runs this and fails the build naming every mismatch.
//! No dependencies beyond serde_json, since `build.rs` includes this file directly.

use std::collections::BTreeSet;

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
    let config: serde_json::Value = serde_json::from_str(&strip_jsonc(wrangler_jsonc))
        .map_err(|e| format!("wrangler.jsonc is not valid JSONC: {e}"))?;
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
    let config: serde_json::Value = serde_json::from_str(&strip_jsonc(wrangler_jsonc))
        .map_err(|e| format!("wrangler.jsonc is not valid JSONC: {e}"))?;
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
            problems.push(format!("cron {cron:?} is in wrangler.jsonc `triggers.crons` but not in src/registry.rs `CRONS` (which workflow should it start?)"));
        }
    }
    for (cron, workflow) in registry {
        if !configured.iter().any(|c| c == cron) {
            problems.push(format!("cron {cron:?} (starting {workflow:?}) is in src/registry.rs `CRONS` but not in wrangler.jsonc `triggers.crons`"));
        }
    }
    problems
}

/// The workflow classes a shim exports: every `export class X extends rustWorkflow(...)`.
pub fn shim_classes(shim_js: &str) -> BTreeSet<String> {
    shim_js
        .lines()
        .filter_map(|line| line.trim().strip_prefix("export class "))
        .filter(|rest| rest.contains("extends rustWorkflow"))
        .filter_map(|rest| rest.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$')).next())
        .map(str::to_string)
        .collect()
}

/// Every disagreement between the registry, wrangler.jsonc and the shim, one line each.
pub fn mismatches(
    registry: &[(&str, &str, &str)],
    configured: &[ConfiguredWorkflow],
    shim: &BTreeSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for &(name, class_name, binding) in registry {
        match configured.iter().find(|w| w.name == name) {
            None => problems.push(format!(
                "workflow {name:?} is in src/registry.rs but not in wrangler.jsonc `workflows` \
                 (add {{\"name\": {name:?}, \"binding\": {binding:?}, \"class_name\": {class_name:?}}})"
            )),
            Some(w) => {
                if w.class_name != class_name {
                    problems.push(format!(
                        "workflow {name:?}: class_name is {:?} in wrangler.jsonc but {class_name:?} in src/registry.rs",
                        w.class_name
                    ));
                }
                if w.binding != binding {
                    problems.push(format!(
                        "workflow {name:?}: binding is {:?} in wrangler.jsonc but {binding:?} in src/registry.rs",
                        w.binding
                    ));
                }
            }
        }
        if !shim.contains(class_name) {
            problems.push(format!(
                "workflow {name:?}: shim/index.mjs has no `export class {class_name} extends rustWorkflow({class_name:?}) {{}}`"
            ));
        }
    }
    for w in configured {
        if !registry.iter().any(|&(name, _, _)| name == w.name) {
            problems.push(format!(
                "workflow {:?} is in wrangler.jsonc but not in src/registry.rs `WORKFLOWS`",
                w.name
            ));
        }
    }
    for class in shim {
        if !registry.iter().any(|&(_, c, _)| c == class) {
            problems.push(format!("shim/index.mjs exports workflow class {class} that src/registry.rs does not list"));
        }
    }
    problems
}

/// Every registry class must have its Rust type listed in `workflows![…]` (src/workflows/mod.rs),
/// which dispatches the shim's calls; `workflows!` itself refuses types the registry lacks.
pub fn dispatch_mismatches(registry_classes: &[&str], workflows_mod_rs: &str) -> Vec<String> {
    let listed: BTreeSet<&str> = workflows_mod_rs
        .split("workflows![")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .map(|list| list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    registry_classes
        .iter()
        .filter(|class| !listed.contains(*class))
        .map(|class| format!("workflow class {class} is in src/registry.rs but its Rust type is not listed in `workflows![…]` in src/workflows/mod.rs"))
        .collect()
}

/// The shim passes its class name to Rust; it must be the class's own name.
pub fn shim_name_mismatches(shim_js: &str) -> Vec<String> {
    shim_js
        .lines()
        .filter_map(|line| line.trim().strip_prefix("export class "))
        .filter_map(|rest| {
            let class = rest.split(|c: char| !(c.is_alphanumeric() || c == '_')).next()?;
            let passed = rest.split("rustWorkflow(").nth(1)?.split(')').next()?.trim().trim_matches(['"', '\'']);
            (class != passed).then(|| {
                format!("shim/index.mjs: class {class} passes {passed:?} to rustWorkflow(); it must pass {class:?}")
            })
        })
        .collect()
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

    const SHIM: &str = r#"
import { WorkflowEntrypoint } from "cloudflare:workers";
export default RustWorker;
export class OrderWorkflow extends rustWorkflow("OrderWorkflow") {}
"#;

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
        let shim = shim_classes(SHIM);
        assert_eq!(shim.iter().collect::<Vec<_>>(), ["OrderWorkflow"]);
        assert!(mismatches(&order(), &configured, &shim).is_empty());
        assert!(shim_name_mismatches(SHIM).is_empty());
    }

    #[test]
    fn each_mismatch_is_named() {
        let configured = configured_workflows(WRANGLER).unwrap();
        let shim = shim_classes(SHIM);
        let extra = vec![order()[0], ("approval", "ApprovalWorkflow", "APPROVAL_WORKFLOW")];
        let problems = mismatches(&extra, &configured, &shim);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("\"approval\" is in src/registry.rs but not in wrangler.jsonc"));
        assert!(problems[1].contains("export class ApprovalWorkflow"));

        let wrong_class = vec![("order-processing", "OrderFlow", "ORDER_WORKFLOW")];
        let problems = mismatches(&wrong_class, &configured, &shim);
        assert!(problems.iter().any(|p| p.contains("class_name is \"OrderWorkflow\" in wrangler.jsonc")));
        assert!(problems.iter().any(|p| p.contains("exports workflow class OrderWorkflow")));

        let problems = mismatches(&[], &configured, &shim);
        assert!(problems.iter().any(|p| p.contains("\"order-processing\" is in wrangler.jsonc but not in src/registry.rs")));

        let bad_shim = "export class OrderWorkflow extends rustWorkflow(\"Order\") {}";
        assert_eq!(shim_name_mismatches(bad_shim).len(), 1);
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
        assert!(problems[0].contains("\"0 4 * * *\" (starting \"x\") is in src/registry.rs"));
        assert!(configured_crons("{}").unwrap().is_empty());
    }

    #[test]
    fn dispatch_list() {
        let module = "mod x;\nworkflows![\n    OrderWorkflow,\n    StepTourWorkflow,\n];\n";
        assert!(dispatch_mismatches(&["OrderWorkflow", "StepTourWorkflow"], module).is_empty());
        let problems = dispatch_mismatches(&["OrderWorkflow", "ApprovalWorkflow"], module);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("ApprovalWorkflow"));
    }
}
