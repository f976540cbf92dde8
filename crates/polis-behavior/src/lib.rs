//! Capability-gated NPC behaviour plugins (seed 003): the seed's
//! permissions, the `PluginContext` that exposes only what a plugin was
//! granted, the `BehaviorExtensionAPI` and its locked registry, and a host
//! that calls plugins of every tier with isolation, fallbacks and world
//! scoping.
//!
//! - [`permissions`]: the thirteen permissions and five groups, registered
//!   through polis's permission catalog, the capability (host method)
//!   behind each, and the server setting `admin:routes` needs.
//! - [`context`]: [`PluginContext`] and its surfaces; [`ContextHost`] puts a
//!   context behind polis's `HostApi` for the wasm and process tiers.
//! - [`extensions`]: the registry of conditions, effects, simulation config
//!   providers, subscriptions and admin routes, with provenance.
//! - [`plugin`]: [`BehaviorPlugin`], built-ins' trait, and [`EndpointPlugin`],
//!   the same over any sandboxed tier.
//! - [`host`]: the [`BehaviorHost`].
//! - [`documents`]: worlds and sessions as JSON, and `enabledPlugins`.
//! - [`health`]: per-plugin counters with the original's thresholds.
//! - [`webhooks`]: a remote plugin's event handlers, sent off the
//!   simulation's path with bounded retries.
//! - [`contract`]: `behavior.v1`, which makes polis's loader claim
//!   behaviour manifests.
//! - [`engine`]: the behaviour engine (routines, activities, conditions,
//!   scoring, tiers) that calls plugins through the host, and its timeline
//!   digest.
//!
//! # Example
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use polis_behavior::{BehaviorHost, HostConfig, Scene, Session, World, builtins};
//!
//! let host = BehaviorHost::load(vec![Arc::new(builtins::Moody::default())], HostConfig::default());
//! let world = Arc::new(World { id: "w".into(), npcs: vec![polis_behavior::Npc { id: "ann".into(), ..Default::default() }], ..Default::default() });
//! let session = Arc::new(Mutex::new(Session::new("s", &world)));
//! let scene = Scene::new(world, session);
//! let cheered = host.apply_effect("effect:plugin:polis.behavior.moody:cheer", &Default::default(), Some("ann"), 0, &scene);
//! assert!(cheered.applied);
//! let cheerful = host.evaluate_condition("plugin:polis.behavior.moody:cheerful", &Default::default(), Some("ann"), 0, &scene);
//! assert!(cheerful.result);
//! ```
#![deny(missing_docs)]

pub mod builtins;
pub mod context;
pub mod contract;
pub mod documents;
pub mod engine;
pub mod extensions;
pub mod health;
pub mod host;
pub mod permissions;
pub mod plugin;
pub mod webhooks;

pub use context::{BehaviorExtensionApi, ContextError, ContextHost, PluginContext, PluginInfo, Scene, Services};
pub use contract::{Behavior, PluginKind, REMOTE_TIMEOUT};
pub use documents::{Location, Npc, PluginScope, Session, World};
pub use extensions::ExtensionRegistry;
pub use health::PluginHealth;
pub use host::{BehaviorHost, ConditionOutcome, EffectOutcome, HostConfig, PluginReport, RouteOutcome};
pub use permissions::{GrantSettings, PluginGrants};
pub use plugin::{BehaviorPlugin, ConditionCall, EffectCall, EndpointPlugin, Event, RouteReply, RouteRequest};
pub use webhooks::{WebhookConfig, WebhookSend};
