//! The Worker's workflows, one per file, each registered in build.rs.

worker_workflows::include_workflows!();
