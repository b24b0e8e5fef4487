// The one piece of hand-written forwarding: a WorkflowEntrypoint class whose
// run(event, step) hands the engine's objects to Rust with its own class name.
import { WorkflowEntrypoint } from "cloudflare:workers";
import RustWorker from "../build/index.js";

export function rustWorkflow(className) {
  return class extends WorkflowEntrypoint {
    run(event, step) {
      return RustWorker.prototype.run_workflow(className, event, step, this.env, this.ctx);
    }
  };
}
