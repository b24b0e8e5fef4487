// The JS side of the bridge, and nothing but forwarding: the Worker's fetch,
// queue and scheduled handlers are the Rust build's default export, and each
// workflow class hands run(event, step) to Rust with its own class name.
// build.rs checks these classes against wrangler.jsonc and src/registry.rs.
import { WorkflowEntrypoint } from "cloudflare:workers";
import RustWorker from "../build/index.js";

export default RustWorker;

function rustWorkflow(className) {
  return class extends WorkflowEntrypoint {
    run(event, step) {
      return RustWorker.prototype.run_workflow(className, event, step, this.env, this.ctx);
    }
  };
}

export class OrderWorkflow extends rustWorkflow("OrderWorkflow") {}
export class StepTourWorkflow extends rustWorkflow("StepTourWorkflow") {}
export class CleanupWorkflow extends rustWorkflow("CleanupWorkflow") {}
export class OnboardingWorkflow extends rustWorkflow("OnboardingWorkflow") {}
export class ApprovalWorkflow extends rustWorkflow("ApprovalWorkflow") {}
export class DataPipelineWorkflow extends rustWorkflow("DataPipelineWorkflow") {}
export class UserLifecycleWorkflow extends rustWorkflow("UserLifecycleWorkflow") {}
