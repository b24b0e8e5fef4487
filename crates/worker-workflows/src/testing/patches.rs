//! Patches on the test engine: where first sightings are recorded (in the world, not in
//! D1), and deploys ([`TestEngine::upgrade`]) that hand an instance in flight to new code.
//!
//! The Worker records a patch's first sighting when a run first asks for it, which may
//! be some time after the deploy: instances created in between take the old path. Here
//! a patch first asked for is recorded as seen when the workflow's code was last
//! deployed ([`TestEngine::upgrade`]; the beginning of time when it never was): the
//! best case, where a run reached the patch right after the deploy. Every instance a test
//! creates after the deploy takes the new path, and every instance in flight before it
//! the old one. [`TestEngine::record_patch`] sets another first sighting, to test the
//! instances created in between.

use super::replay::TypedDriver;
use super::world::World;
use super::{workflow_name, TestEngine};
use crate::bridge::engine::LocalBoxFuture;
use crate::bridge::patch::{PatchBackend, PatchContext};
use crate::bridge::WorkflowEvent;
use crate::core::duration;
use crate::core::patch;
use crate::core::step_error::StepError;
use crate::registry::Registered;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The test engine's record of first sightings.
struct WorldPatches {
    world: Rc<World>,
}

impl PatchBackend for WorldPatches {
    fn first_seen<'a>(&'a self, workflow: &'a str, patch_id: &'a str) -> LocalBoxFuture<'a, Result<u64, StepError>> {
        let deployed = self.world.deployed_at.borrow().get(workflow).copied().unwrap_or(0);
        let key = (workflow.to_string(), patch_id.to_string());
        let seen = *self.world.patches_seen.borrow_mut().entry(key).or_insert(deployed);
        Box::pin(async move { Ok(seen) })
    }
}

/// The patch context of a run of `event`'s instance on the test engine.
pub(crate) fn context<P>(world: &Rc<World>, event: &WorkflowEvent<P>) -> PatchContext {
    PatchContext::new(&event.workflow_name, event.timestamp, Rc::new(WorldPatches { world: Rc::clone(world) }))
}

fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map(duration::as_millis).unwrap_or(0)
}

impl TestEngine {
    /// Deploys new code for an instance in flight, as `wrangler deploy` does for every
    /// instance of the workflow: its next run (and every one after) runs `W` (registered
    /// with the same workflow name as the code it ran so far) from the top, with `params`
    /// (the instance's params as `W` reads them), against the history the old code made.
    /// The determinism check holds the new code's replay to the old code's last run, so a
    /// change that is unsafe for instances in flight is reported, naming the step, and a
    /// change behind [`Step::patched`](crate::bridge::Step::patched) passes (the patch's
    /// step answers false there: the instance was created before the deploy). Patches
    /// are recorded as first seen now, the deploy's time (see the module's notes).
    ///
    /// Panics when there is no such instance, or `W` is another workflow.
    pub fn upgrade<W: Registered>(&self, id: &str, params: W::Params)
    where
        W::Params: 'static,
    {
        let index = self.slot_index(id);
        let workflow = workflow_name::<W>();
        let now = self.world.now_ms();
        let mut slots = self.slots.borrow_mut();
        let slot = &mut slots[index];
        assert_eq!(slot.workflow, workflow, "test engine: instance {id:?} is a {} instance, and the new code is {workflow}", slot.workflow);
        let (created_at, schedule) = {
            let core = slot.core.borrow();
            (core.created_at, core.schedule.clone())
        };
        let event = WorkflowEvent {
            payload: params,
            timestamp: World::time(created_at),
            instance_id: id.to_string(),
            workflow_name: workflow.clone(),
            schedule,
        };
        slot.driver = Some(Box::new(TypedDriver::<W> { event }));
        self.world.deployed_at.borrow_mut().insert(workflow, now);
    }

    /// Records patch `id` of `W`'s workflow as first seen at `at`, as a run of the Worker
    /// that first asked for it then would have (once recorded, a first sighting never
    /// changes, here as in D1): instances created before `at` take the old path. With it
    /// a test reaches the instances the Worker sends down the old path because they were
    /// created after the deploy but before any run reached the patch.
    pub fn record_patch<W: Registered>(&self, id: &str, at: SystemTime) {
        patch::check_id(id).unwrap_or_else(|e| panic!("test engine: {e}"));
        self.world.patches_seen.borrow_mut().entry((workflow_name::<W>(), id.to_string())).or_insert(millis(at));
    }

    /// When patch `id` of `W`'s workflow was first seen, if any run asked for it yet.
    pub fn patch_first_seen<W: Registered>(&self, id: &str) -> Option<SystemTime> {
        self.world.patches_seen.borrow().get(&(workflow_name::<W>(), id.to_string())).map(|&ms| World::time(ms))
    }
}
