//! The simulation loop: ticks, tiers, decisions, effects, the timeline.
//!
//! A tick is `secondsPerTick` world seconds (900 by default, so 96 ticks
//! are a day). At each tick, at the tick's world time, the NPCs whose tier
//! is due are simulated in world order (at most `maxNpcsPerTick` of them,
//! those due longest first). Simulating an NPC:
//!
//! 1. its tier is chosen by the priority rules;
//! 2. the activity it was doing gives its energy per hour for the time
//!    since it was last simulated;
//! 3. if its next decision is due, the routine's active node offers
//!    activities, the tier's detail level chooses one (see
//!    [`DetailLevel`]), and a new activity ends the old one (for
//!    cooldowns), starts with its start effects, sets the next decision
//!    `minDurationSeconds` later and is written to the timeline. Choosing
//!    the activity the NPC is already doing continues it. Choosing nothing
//!    leaves the NPC idle (`activityId: null`) and it tries again next tick.
//!
//! Every random draw comes from a stream derived from the run seed, the
//! tick, the NPC and a purpose, and every plugin call gets a seed from
//! such a stream, so the same world, session, seed and plugins give the
//! same timeline whatever tier the plugins run in.

use std::sync::{Arc, Mutex, MutexGuard};

use polis_core::canonical::Digest;
use polis_core::policy::RunControl;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::BehaviorHost;
use crate::context::Scene;
use crate::documents::{Npc, Session, World, npc_key};
use crate::engine::conditions::{Eval, relationship_key};
use crate::engine::config::{Activity, ConfigError, WorldConfig, routine_id};
use crate::engine::effects;
use crate::engine::rng::{Purpose, Rng};
use crate::engine::routine::active_node;
use crate::engine::scoring::{self, Preferences, ScoreInput};
use crate::engine::state::{NpcState, StateError};
use crate::engine::tiers::{DetailLevel, Tier, distance, position};
use crate::engine::timeline::{Entry, Timeline};
use crate::plugin::Event;

/// World seconds per tick by default: 15 minutes, so 96 ticks are a day.
pub const DEFAULT_SECONDS_PER_TICK: i64 = 900;

/// Most ticks one run may have.
pub const MAX_TICKS: u64 = 10_000_000;

/// How long and how a run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunOptions {
    /// Ticks to simulate.
    pub ticks: u64,
    /// The run seed.
    pub seed: u64,
    /// World seconds per tick. By default [`DEFAULT_SECONDS_PER_TICK`].
    pub seconds_per_tick: i64,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { ticks: 96, seed: 0, seconds_per_tick: DEFAULT_SECONDS_PER_TICK }
    }
}

/// Why a simulation cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The world's behaviour config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An NPC's session state is invalid.
    #[error(transparent)]
    State(#[from] StateError),
    /// The run options are out of range.
    #[error("{0}")]
    Options(String),
    /// The caller stopped the run (a job cancelled or out of time) before
    /// tick `tick`; nothing of it is kept.
    #[error("the simulation was stopped before tick {tick}")]
    Stopped {
        /// The first tick not simulated.
        tick: u64,
    },
}

impl EngineError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Config(e) => e.code(),
            EngineError::State(_) => "behavior.state_invalid",
            EngineError::Options(_) => "behavior.options_invalid",
            EngineError::Stopped { .. } => "behavior.stopped",
        }
    }
}

/// Counts of what a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// NPC simulations.
    pub simulated: u64,
    /// Decisions made.
    pub decisions: u64,
    /// Activities started.
    pub started: u64,
    /// Plugin effects applied.
    pub effects_applied: u64,
    /// Plugin effects skipped (a failing, refused or disabled plugin).
    pub effects_skipped: u64,
    /// The first 10 reasons an effect was skipped.
    pub skip_reasons: Vec<String>,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The timeline.
    pub timeline: Timeline,
    /// Its digest.
    pub digest: Digest,
    /// The session after the last tick.
    pub session: Session,
    /// Counts.
    pub stats: Stats,
    /// Warnings about the world.
    pub warnings: Vec<String>,
}

/// A world ready to simulate with a host's plugins.
pub struct Simulation<'h> {
    world: Arc<World>,
    config: WorldConfig,
    host: &'h BehaviorHost,
    scene: Scene,
    session: Arc<Mutex<Session>>,
}

impl std::fmt::Debug for Simulation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation").field("world", &self.world.id).finish_non_exhaustive()
    }
}

fn lock(session: &Mutex<Session>) -> MutexGuard<'_, Session> {
    session.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<'h> Simulation<'h> {
    /// Reads and checks the world's behaviour config (with the host's
    /// simulation config providers) and every NPC's state in `session`.
    pub fn new(world: World, session: Session, host: &'h BehaviorHost) -> Result<Simulation<'h>, EngineError> {
        let config = WorldConfig::read(&world, &host.simulation_config(&world))?;
        for npc in &world.npcs {
            NpcState::read(&session, &npc.id)?;
        }
        let world = Arc::new(world);
        let session = Arc::new(Mutex::new(session));
        let scene = Scene::new(Arc::clone(&world), Arc::clone(&session));
        Ok(Simulation { world, config, host, scene, session })
    }

    /// The checked config.
    pub fn config(&self) -> &WorldConfig {
        &self.config
    }

    /// Runs `options.ticks` ticks from the session's world time.
    pub fn run(self, options: RunOptions) -> Result<Outcome, EngineError> {
        self.run_until(options, &RunControl::new())
    }

    /// [`Simulation::run`], checking `control` before every tick: once it
    /// is cancelled the run stops with [`EngineError::Stopped`].
    pub fn run_until(self, options: RunOptions, control: &RunControl) -> Result<Outcome, EngineError> {
        if options.seconds_per_tick < 1 {
            return Err(EngineError::Options("seconds per tick must be at least 1".to_owned()));
        }
        if options.ticks > MAX_TICKS {
            return Err(EngineError::Options(format!("at most {MAX_TICKS} ticks")));
        }
        let start = lock(&self.session).world_time;
        let mut timeline = Timeline::default();
        let mut stats = Stats::default();
        for npc in &self.world.npcs {
            timeline.npcs.insert(npc.id.clone(), Vec::new());
        }
        for tick in 0..options.ticks {
            if control.is_cancelled() {
                return Err(EngineError::Stopped { tick });
            }
            let offset = i64::try_from(tick).unwrap_or(i64::MAX).saturating_mul(options.seconds_per_tick);
            let now = start.saturating_add(offset);
            lock(&self.session).world_time = now;
            for index in self.due(now) {
                let npc = &self.world.npcs[index];
                let mut step = Step { sim: &self, npc, tick, now, seed: options.seed, stats: &mut stats };
                if let Some(entry) = step.simulate()? {
                    timeline.npcs.entry(npc.id.clone()).or_default().push(entry);
                }
            }
        }
        // The run covered `ticks` whole ticks: the session resumes at the
        // next one, so advancing twice simulates no moment twice.
        let covered = i64::try_from(options.ticks).unwrap_or(i64::MAX).saturating_mul(options.seconds_per_tick);
        lock(&self.session).world_time = start.saturating_add(covered);
        let digest = timeline.digest();
        let session = lock(&self.session).clone();
        Ok(Outcome { timeline, digest, session, stats, warnings: self.config.warnings.clone() })
    }

    /// The NPCs to simulate at `now`, in world order.
    fn due(&self, now: i64) -> Vec<usize> {
        let session = lock(&self.session);
        let mut due = Vec::new();
        for (index, npc) in self.world.npcs.iter().enumerate() {
            // Only one field is needed here; the whole state is read (and
            // checked) when the NPC is simulated.
            let next = NpcState::next_tick_at(&session, &npc.id);
            if next <= now {
                due.push((next, index));
            }
        }
        due.sort_unstable();
        if let Some(max) = self.config.simulation.max_npcs_per_tick {
            due.truncate(max);
        }
        let mut indices: Vec<usize> = due.into_iter().map(|(_, i)| i).collect();
        indices.sort_unstable();
        indices
    }
}

/// One NPC at one tick.
struct Step<'a, 'h> {
    sim: &'a Simulation<'h>,
    npc: &'a Npc,
    tick: u64,
    now: i64,
    seed: u64,
    stats: &'a mut Stats,
}

impl<'a> Step<'a, '_> {
    fn read(&self) -> Result<NpcState, EngineError> {
        Ok(NpcState::read(&lock(&self.sim.session), &self.npc.id)?)
    }

    fn write(&self, state: &NpcState) {
        state.write(&mut lock(&self.sim.session), &self.npc.id);
    }

    fn eval<'e>(&'e self, state: &'e NpcState, rng: &'e mut Rng) -> Eval<'e> {
        Eval { npc_id: &self.npc.id, state, world_time: self.now, host: self.sim.host, scene: &self.sim.scene, rng }
    }

    fn activity(&self, id: &str) -> Option<&'a Activity> {
        self.sim.config.behavior.activities.get(id)
    }

    fn simulate(&mut self) -> Result<Option<Entry>, EngineError> {
        self.stats.simulated += 1;
        let mut state = self.read()?;
        let tier = self.tier(&state);
        let elapsed = state.last_simulated_at_seconds.map_or(0, |last| self.now - last);
        if let Some(current) = state.current_activity_id.as_deref().and_then(|id| self.activity(id)) {
            effects::apply_energy(&mut state, current.effects.energy_delta_per_hour, elapsed);
        }
        state.last_simulated_at_seconds = Some(self.now);
        state.next_tick_at_seconds = self.now + tier.tick_frequency_seconds;
        self.write(&state);
        if self.now < state.next_decision_at_seconds {
            return Ok(None);
        }
        self.stats.decisions += 1;
        let chosen = self.decide(&state, tier.detail_level).map(|a| a.id.clone());
        if chosen.is_some() && chosen == state.current_activity_id {
            let activity = chosen.as_deref().and_then(|id| self.activity(id));
            state.next_decision_at_seconds = self.now + activity.map_or(0, |a| a.min_duration_seconds);
            self.write(&state);
            return Ok(None);
        }
        let ended = state.current_activity_id.clone();
        state.finish(self.now);
        if let Some(ended) = &ended {
            self.announce("npc:activity_ended", ended);
        }
        let Some(activity) = chosen.as_deref().and_then(|id| self.activity(id)) else {
            state.next_decision_at_seconds = self.now;
            self.write(&state);
            return Ok(ended.map(|_| self.entry(None, &tier, &state)));
        };
        state.current_activity_id = Some(activity.id.clone());
        state.activity_started_at_seconds = Some(self.now);
        state.next_decision_at_seconds = self.now + activity.min_duration_seconds;
        let state = self.start(activity, state, tier.detail_level)?;
        self.stats.started += 1;
        self.announce("npc:activity_started", &activity.id);
        Ok(Some(self.entry(Some(activity.id.clone()), &tier, &state)))
    }

    fn entry(&self, activity_id: Option<String>, tier: &Tier, state: &NpcState) -> Entry {
        Entry {
            tick: self.tick,
            at_seconds: self.now,
            activity_id,
            tier: tier.id.clone(),
            detail: tier.detail_level,
            energy: state.energy,
            valence: state.mood_state.valence,
        }
    }

    /// The NPC's tier: the highest-priority matching rule's, first of equals.
    fn tier(&self, state: &NpcState) -> Tier {
        let config = &self.sim.config.simulation;
        let mut rng = Rng::derive(self.seed, self.tick, &self.npc.id, Purpose::Tier);
        let player = {
            let session = lock(&self.sim.session);
            position(session.flags.get("player").and_then(|p| p.get("position")))
                .or_else(|| position(self.sim.world.meta.get("player").and_then(|p| p.get("position"))))
        };
        let here = position(self.npc.meta.get("position"));
        let mut best: Option<(&str, f64)> = None;
        for rule in &config.priority_rules {
            if best.is_some_and(|(_, p)| rule.priority <= p) {
                continue;
            }
            let near = rule.max_distance.is_none_or(|max| match (player, here) {
                (Some(a), Some(b)) => distance(a, b) <= max,
                _ => false,
            });
            if near && rule.condition.as_ref().is_none_or(|c| self.eval(state, &mut rng).holds(c)) {
                best = Some((rule.tier.as_str(), rule.priority));
            }
        }
        let id = best.map_or(config.default_tier.as_str(), |(id, _)| id);
        // Rule and default tiers were checked to exist when the config was
        // read; the fallback only keeps this function total.
        config.tier(id).cloned().unwrap_or(Tier {
            id: id.to_owned(),
            tick_frequency_seconds: 1,
            detail_level: DetailLevel::Full,
        })
    }

    /// Chooses an activity by the tier's detail level.
    fn decide(&self, state: &NpcState, detail: DetailLevel) -> Option<&'a Activity> {
        let routine_id = routine_id(self.npc).ok().flatten()?;
        let routine = self.sim.config.behavior.routines.get(routine_id)?;
        let mut rng = Rng::derive(self.seed, self.tick, &self.npc.id, Purpose::Decision);
        let node =
            active_node(routine, self.now, &mut self.eval(state, &mut rng), detail != DetailLevel::ScheduleOnly)?;
        if detail == DetailLevel::ScheduleOnly {
            return node
                .preferred_activities
                .iter()
                .filter(|p| p.conditions.is_empty())
                .filter_map(|p| self.activity(&p.activity_id))
                .find(|a| {
                    a.requirements.conditions.is_empty()
                        && self.meets_requirements(a, state, &mut rng)
                        && !scoring::cooling_down(a, state, self.now)
                });
        }
        let preferences = self.preferences(routine);
        let affinity = |key: &str| self.affinity(key);
        let input = ScoreInput { preferences: &preferences, state, affinity: &affinity };
        let mut scored: Vec<(&Activity, f64)> = Vec::new();
        for offer in &node.preferred_activities {
            if !self.eval(state, &mut rng).all(&offer.conditions) {
                continue;
            }
            let Some(activity) = self.activity(&offer.activity_id) else { continue };
            if !self.meets_requirements(activity, state, &mut rng) || scoring::cooling_down(activity, state, self.now) {
                continue;
            }
            scored.push((activity, scoring::score(activity, offer.weight, &self.sim.config.weights, &input)));
        }
        match detail {
            DetailLevel::Full => scoring::weighted_choice(&scored, &mut rng).copied(),
            _ => scoring::best(&scored).copied(),
        }
    }

    fn meets_requirements(&self, activity: &Activity, state: &NpcState, rng: &mut Rng) -> bool {
        let r = &activity.requirements;
        if r.min_energy.is_some_and(|min| state.energy < min) || r.max_energy.is_some_and(|max| state.energy > max) {
            return false;
        }
        if !r.roles.is_empty() && !r.roles.contains(&self.npc.role) {
            return false;
        }
        self.eval(state, rng).all(&r.conditions)
    }

    /// Routine defaults < NPC `meta.behavior.preferences` < session
    /// `flags.npcs["npc:<id>"].preferences`.
    fn preferences(&self, routine: &crate::engine::config::Routine) -> Preferences {
        let session = lock(&self.sim.session);
        let from_session =
            session.flags.get("npcs").and_then(|n| n.get(npc_key(&self.npc.id))).and_then(|n| n.get("preferences"));
        let from_npc = self.npc.meta.get("behavior").and_then(|b| b.get("preferences"));
        Preferences::merge(&[
            Some(&routine.default_preferences),
            from_npc.and_then(Value::as_object),
            from_session.and_then(Value::as_object),
        ])
    }

    fn affinity(&self, key: &str) -> f64 {
        let session = lock(&self.sim.session);
        let key = relationship_key(key, &self.npc.id);
        session.relationships.get(&key).and_then(|r| r.get("affinity")).and_then(Value::as_f64).unwrap_or(50.0)
    }

    /// Applies an activity's start effects by detail level; returns the
    /// state as it is after them (plugins may have changed it).
    fn start(
        &mut self,
        activity: &Activity,
        mut state: NpcState,
        detail: DetailLevel,
    ) -> Result<NpcState, EngineError> {
        if detail == DetailLevel::ScheduleOnly {
            self.write(&state);
            return Ok(state);
        }
        {
            let mut session = lock(&self.sim.session);
            effects::apply_start(&activity.effects, &self.npc.id, &mut state, &mut session);
            state.write(&mut session, &self.npc.id);
        }
        if detail != DetailLevel::Full || activity.effects.custom_effects.is_empty() {
            return Ok(state);
        }
        let mut rng = Rng::derive(self.seed, self.tick, &self.npc.id, Purpose::Effects);
        for effect in &activity.effects.custom_effects {
            let outcome = self.sim.host.apply_effect(
                &effect.effect_type,
                &effect.params,
                Some(&self.npc.id),
                rng.next_seed(),
                &self.sim.scene,
            );
            if outcome.applied {
                self.stats.effects_applied += 1;
            } else {
                self.stats.effects_skipped += 1;
                if self.stats.skip_reasons.len() < 10 {
                    let why = outcome.skipped.unwrap_or_default();
                    self.stats.skip_reasons.push(format!("{} for `{}`: {why}", effect.effect_type, self.npc.id));
                }
            }
        }
        let mut state = self.read()?;
        state.retag();
        self.write(&state);
        Ok(state)
    }

    /// Delivers `npc:activity_started` or `npc:activity_ended` to subscribers.
    fn announce(&self, event_type: &str, activity_id: &str) {
        let data = json!({"npcId": self.npc.id, "activityId": activity_id, "atSeconds": self.now});
        self.sim.host.deliver(&Event { event_type: event_type.to_owned(), data }, &self.sim.scene);
    }
}
