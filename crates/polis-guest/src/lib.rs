//! Write a polis policy in Rust, compile it to `wasm32-unknown-unknown`,
//! and let this crate speak the polis wasm ABI for you.
//!
//! A policy is one typed function from a [`Request`] to an output (or an
//! [`Error`]); [`export_policy!`] turns it into the module exports the host
//! expects (`polis_abi_version`, `polis_alloc`, `polis_run`). The crate
//! decodes the request JSON into your input and params types, encodes your
//! output, and reports decoding problems as a rejection naming the field.
//! The request buffer is a `Vec` the crate keeps between `polis_alloc` and
//! `polis_run`; the only `unsafe` is the declaration of the host's imports
//! in [`host`] (`log`, `random_u64`), which plugins call as safe functions.
//!
//! # Example
//!
//! ```
//! use polis_guest::{Error, Request};
//!
//! #[derive(serde::Deserialize)]
//! struct Input { stations: Vec<serde_json::Value> }
//!
//! #[derive(serde::Serialize)]
//! struct Output { count: usize }
//!
//! fn decide(request: Request<Input, serde_json::Value>) -> Result<Output, Error> {
//!     Ok(Output { count: request.input.stations.len() })
//! }
//!
//! // In the plugin crate (crate-type = ["cdylib"]):
//! // polis_guest::export_policy!(decide);
//!
//! let reply = polis_guest::handle(br#"{"input":{"stations":[1,2]},"params":null}"#, decide);
//! assert_eq!(reply, br#"{"ok":{"count":2}}"#);
//! ```
#![deny(missing_docs)]

use std::cell::RefCell;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The ABI version this crate speaks.
pub const ABI_VERSION: i32 = 1;

/// The run context, present when the plugin holds `context:read`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Context {
    /// The system the decision is for.
    pub system_id: String,
    /// The serving view token.
    pub sv: String,
    /// Start of the decision bucket, epoch seconds UTC.
    pub decision_bucket_ts: i64,
    /// Planning horizon in steps.
    pub horizon_steps: u32,
    /// The caller's request id.
    pub request_id: String,
    /// The decision time in RFC 3339.
    pub now_iso: String,
    /// The run seed, below 2^53.
    pub seed: u64,
}

/// What the host sends: the input, the params, and the context when
/// granted.
#[derive(Debug, Clone, Deserialize)]
pub struct Request<I, P> {
    /// The run context, with `context:read` only.
    #[serde(default = "Option::default")]
    pub context: Option<Context>,
    /// The contract's input.
    pub input: I,
    /// The run's params.
    pub params: P,
}

/// Why a policy produced no output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The input or params are unacceptable to this policy.
    Rejected(String),
    /// The policy broke.
    Failed(String),
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Reply<'a, O> {
    Ok(&'a O),
    Error { kind: &'static str, message: &'a str },
}

/// Runs `decide` on a request document and returns the reply document.
/// [`export_policy!`] calls this; it is public so plugins can be tested
/// natively, without a wasm runtime.
pub fn handle<I, P, O, F>(request: &[u8], decide: F) -> Vec<u8>
where
    I: DeserializeOwned,
    P: DeserializeOwned,
    O: Serialize,
    F: FnOnce(Request<I, P>) -> Result<O, Error>,
{
    handle_method(request, decide)
}

/// Runs `answer` on a request document of any shape and returns the reply
/// document: the envelope [`handle`] writes, for a method other than `run`
/// (a strategy's `on_event`). A request that does not decode is rejected
/// naming the problem.
pub fn handle_method<R, O, F>(request: &[u8], answer: F) -> Vec<u8>
where
    R: DeserializeOwned,
    O: Serialize,
    F: FnOnce(R) -> Result<O, Error>,
{
    let error = |kind: &'static str, message: &str| {
        let reply: Reply<'_, ()> = Reply::Error { kind, message };
        serde_json::to_vec(&reply).unwrap_or_default()
    };
    let request: R = match serde_json::from_slice(request) {
        Ok(request) => request,
        Err(e) => return error("rejected", &format!("request does not decode: {e}")),
    };
    match answer(request) {
        Ok(output) => serde_json::to_vec(&Reply::Ok(&output))
            .unwrap_or_else(|e| error("failed", &format!("output does not encode: {e}"))),
        Err(Error::Rejected(message)) => error("rejected", &message),
        Err(Error::Failed(message)) => error("failed", &message),
    }
}

thread_local! {
    static REQUEST: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static REPLY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// ABI plumbing for [`export_policy!`]: reserves the request buffer and
/// returns its address.
#[doc(hidden)]
pub fn __alloc(len: i32) -> i32 {
    REQUEST.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        *buffer = vec![0; usize::try_from(len).unwrap_or(0)];
        address(buffer.as_ptr())
    })
}

/// ABI plumbing for [`export_policy!`]: runs `decide` on the request the
/// host wrote and returns the packed reply address and length.
#[doc(hidden)]
pub fn __run<I, P, O, F>(_ptr: i32, len: i32, decide: F) -> i64
where
    I: DeserializeOwned,
    P: DeserializeOwned,
    O: Serialize,
    F: FnOnce(Request<I, P>) -> Result<O, Error>,
{
    __call(len, |request| handle(request, decide))
}

/// ABI plumbing for the exported methods: runs `answer` on the request the
/// host wrote and returns the packed reply address and length.
#[doc(hidden)]
pub fn __call(len: i32, answer: impl FnOnce(&[u8]) -> Vec<u8>) -> i64 {
    let request = REQUEST.with(|buffer| std::mem::take(&mut *buffer.borrow_mut()));
    let used = usize::try_from(len).unwrap_or(0).min(request.len());
    let reply = answer(&request[..used]);
    REPLY.with(|slot| {
        let mut slot = slot.borrow_mut();
        *slot = reply;
        let (ptr, len) = (address(slot.as_ptr()) as u32, slot.len() as u32);
        ((u64::from(ptr) << 32) | u64::from(len)) as i64
    })
}

/// A pointer as the 32-bit address the host sees. On wasm32 this is exact;
/// on other targets (native tests) the value is never used as an address.
fn address(ptr: *const u8) -> i32 {
    ptr as usize as u32 as i32
}

/// Host functions, each usable only when the manifest holds its
/// permission: a module that calls one without it fails at load with a
/// message naming the permission, because the host links no such import.
/// Outside wasm (native unit tests of a plugin) they are stand-ins.
pub mod host {
    #[cfg(target_arch = "wasm32")]
    #[link(wasm_import_module = "polis")]
    #[expect(unsafe_code, reason = "declaring the host's imports is an extern block")]
    unsafe extern "C" {
        // SAFETY: the host reads `len` bytes at `ptr` from this module's
        // linear memory with bounds checks and writes nothing; it draws
        // from a generator the guest never touches. Neither can break a
        // guest invariant, so both are safe to call.
        #[link_name = "log"]
        safe fn host_log(ptr: i32, len: i32);
        #[link_name = "random_u64"]
        safe fn host_random_u64() -> i64;
    }

    /// Writes one log line, which polis tags with the plugin id
    /// (`log:emit`).
    #[cfg(target_arch = "wasm32")]
    pub fn log(message: &str) {
        host_log(super::address(message.as_ptr()), message.len() as i32);
    }

    /// The next number from a generator seeded by the run key, so a rerun
    /// of the same run draws the same numbers (`random`).
    #[cfg(target_arch = "wasm32")]
    pub fn random_u64() -> u64 {
        host_random_u64() as u64
    }

    /// Native stand-in: writes the line to stderr.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn log(message: &str) {
        eprintln!("{message}");
    }

    /// Native stand-in: a fixed splitmix64 sequence per thread, for unit
    /// tests; the host's numbers differ.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn random_u64() -> u64 {
        thread_local!(static STATE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) });
        STATE.with(|state| {
            let next = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
            state.set(next);
            let mut z = next;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
    }
}

/// Exports a policy function `fn(Request<I, P>) -> Result<O, Error>` as
/// the polis wasm ABI.
#[macro_export]
macro_rules! export_policy {
    ($decide:path) => {
        /// The polis ABI version.
        #[expect(unsafe_code, reason = "the ABI needs an unmangled export name")]
        #[unsafe(no_mangle)]
        pub extern "C" fn polis_abi_version() -> i32 {
            $crate::ABI_VERSION
        }

        /// Reserves the request buffer.
        #[expect(unsafe_code, reason = "the ABI needs an unmangled export name")]
        #[unsafe(no_mangle)]
        pub extern "C" fn polis_alloc(len: i32) -> i32 {
            $crate::__alloc(len)
        }

        /// Runs the policy on the request.
        #[expect(unsafe_code, reason = "the ABI needs an unmangled export name")]
        #[unsafe(no_mangle)]
        pub extern "C" fn polis_run(ptr: i32, len: i32) -> i64 {
            $crate::__run(ptr, len, $decide)
        }
    };
}

/// `strategy.v1` strategies in Rust: implement [`strategy::Strategy`] and
/// export it with [`export_strategy!`].
///
/// polis makes one instance per configured strategy and symbol and names
/// it in every request (`instance`); the module keeps them all in a map,
/// so an instance's fields are its state across events. polis keeps one
/// module instance for all of a plugin's calls (a *resident* module), so
/// the map lives as long as the plugin, unless a call traps: then polis
/// starts a fresh module, and calls on instances it never validated fail
/// rather than run on default params.
///
/// ```
/// use polis_guest::strategy::{Direction, FeatureVector, Intent, Strategy, StrategyContext};
///
/// #[derive(Default)]
/// struct AlwaysFlat;
///
/// impl Strategy for AlwaysFlat {
///     fn validate_params(&mut self, params: &serde_json::Value) -> Result<(), Vec<String>> {
///         let unknown = params.as_object().into_iter().flatten().map(|(k, _)| format!("unknown param `{k}`"));
///         let errors: Vec<String> = unknown.collect();
///         if errors.is_empty() { Ok(()) } else { Err(errors) }
///     }
///     fn required_features(&self) -> Vec<String> { vec!["close".into()] }
///     fn warmup_bars(&self) -> u32 { 0 }
///     fn on_event(&mut self, fv: &FeatureVector, ctx: &StrategyContext) -> Result<Option<Intent>, polis_guest::Error> {
///         Ok(None)
///     }
/// }
///
/// // In the plugin crate (crate-type = ["cdylib"]):
/// // polis_guest::export_strategy!(AlwaysFlat);
/// ```
pub mod strategy {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};
    use serde_json::Value;

    use crate::Error;

    /// One bar's features (`feature_vector.v3`).
    #[derive(Debug, Clone, PartialEq, Deserialize)]
    pub struct FeatureVector {
        /// The instrument.
        pub symbol: String,
        /// The bar's time, RFC 3339 UTC.
        pub event_ts: String,
        /// The bar length, such as `1d`.
        pub timeframe: String,
        /// `feature_vector.v3`.
        pub schema_version: String,
        /// Feature values by name; a feature without a value yet is absent.
        pub values: BTreeMap<String, f64>,
    }

    /// What an instance knows about its configuration.
    #[derive(Debug, Clone, PartialEq, Deserialize)]
    pub struct StrategyContext {
        /// The catalog entry's id.
        pub strategy_id: String,
        /// The entry's `strategy_type` (for a plugin, its policy version).
        pub strategy_type: String,
        /// The entry's version.
        pub version: String,
        /// The entry's params.
        pub params: Value,
        /// For an overlay, the intents of its sources on this event, as the
        /// host records them.
        #[serde(default)]
        pub upstream: Vec<Value>,
    }

    /// Where an intent wants the position to be.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Direction {
        /// Hold the notional long.
        Long,
        /// Hold the notional short.
        Short,
        /// Hold nothing.
        Flat,
    }

    /// What a strategy wants: a target, never an order.
    #[derive(Debug, Clone, PartialEq, Serialize)]
    pub struct Intent {
        /// `ctx.strategy_id`.
        pub strategy_id: String,
        /// `fv.symbol`.
        pub symbol: String,
        /// Long, short or flat.
        pub direction: Direction,
        /// How sure, in [0, 1].
        pub confidence: f64,
        /// The absolute notional to hold, finite and not negative.
        pub target_notional: f64,
        /// How long it is meant to hold, such as `1d`.
        pub horizon: String,
        /// Why, one reason a line.
        pub rationale: Vec<String>,
        /// Anything else to record.
        pub meta: BTreeMap<String, Value>,
    }

    /// The seed's plugin surface; one value per instance, made by
    /// `Default` on its `validate_params`.
    pub trait Strategy: Default {
        /// Checks and keeps `params` (a JSON object); `Err` lists every reason.
        fn validate_params(&mut self, params: &Value) -> Result<(), Vec<String>>;
        /// The feature names it reads (after `validate_params`).
        fn required_features(&self) -> Vec<String>;
        /// Bars consumed before its intents count (after `validate_params`).
        fn warmup_bars(&self) -> u32;
        /// An intent, or `None`; `Err` counts against the strategy's breaker.
        fn on_event(&mut self, fv: &FeatureVector, ctx: &StrategyContext) -> Result<Option<Intent>, Error>;
    }

    #[derive(Deserialize)]
    struct ParamsRequest {
        instance: String,
        #[serde(default)]
        params: Value,
    }

    #[derive(Deserialize)]
    struct InstanceRequest {
        instance: String,
    }

    #[derive(Deserialize)]
    struct EventRequest {
        instance: String,
        fv: FeatureVector,
        ctx: StrategyContext,
        #[serde(default)]
        upstream: Vec<Value>,
    }

    #[derive(Serialize)]
    struct ParamsReply {
        errors: Vec<String>,
    }

    #[derive(Serialize)]
    struct EventReply {
        intent: Option<Intent>,
    }

    /// Every instance of one strategy type, by id; [`export_strategy!`]
    /// keeps one and answers the four methods with it. Public so plugins
    /// can be tested natively, request by request.
    #[derive(Debug)]
    pub struct Instances<T> {
        by_id: BTreeMap<String, T>,
    }

    impl<T> Default for Instances<T> {
        fn default() -> Self {
            Instances { by_id: BTreeMap::new() }
        }
    }

    impl<T: Strategy> Instances<T> {
        fn known(&mut self, id: &str) -> Result<&mut T, Error> {
            self.by_id.get_mut(id).ok_or_else(|| {
                Error::Failed(format!("instance `{id}` has no params yet; the host calls validate_params first"))
            })
        }

        /// Answers one request to `method` (`validate_params`,
        /// `required_features`, `warmup_bars`, `on_event`) with the reply
        /// document.
        pub fn answer(&mut self, method: &str, request: &[u8]) -> Vec<u8> {
            match method {
                "validate_params" => crate::handle_method(request, |r: ParamsRequest| {
                    let params = if r.params.is_null() { Value::Object(Default::default()) } else { r.params };
                    let errors = self.by_id.entry(r.instance).or_default().validate_params(&params).err();
                    Ok(ParamsReply { errors: errors.unwrap_or_default() })
                }),
                "required_features" => crate::handle_method(request, |r: InstanceRequest| {
                    let mut features = self.known(&r.instance)?.required_features();
                    features.sort();
                    Ok(features)
                }),
                "warmup_bars" => {
                    crate::handle_method(request, |r: InstanceRequest| Ok(self.known(&r.instance)?.warmup_bars()))
                }
                "on_event" => crate::handle_method(request, |r: EventRequest| {
                    let mut ctx = r.ctx;
                    ctx.upstream = r.upstream;
                    Ok(EventReply { intent: self.known(&r.instance)?.on_event(&r.fv, &ctx)? })
                }),
                other => crate::handle_method(request, |_: Value| -> Result<(), Error> {
                    Err(Error::Failed(format!("unknown method `{other}`")))
                }),
            }
        }
    }
}

/// Exports a [`strategy::Strategy`] type as the polis wasm ABI's
/// `strategy.v1` methods (`polis_validate_params`,
/// `polis_required_features`, `polis_warmup_bars`, `polis_on_event`), its
/// instances kept in the module by `instance` id.
#[macro_export]
macro_rules! export_strategy {
    ($strategy:ty) => {
        ::std::thread_local! {
            static POLIS_INSTANCES: ::std::cell::RefCell<$crate::strategy::Instances<$strategy>> =
                ::std::cell::RefCell::new(::std::default::Default::default());
        }

        fn polis_answer(method: &str, len: i32) -> i64 {
            $crate::__call(len, |request| POLIS_INSTANCES.with(|i| i.borrow_mut().answer(method, request)))
        }

        /// The polis ABI version.
        #[expect(unsafe_code, reason = "the ABI needs an unmangled export name")]
        #[unsafe(no_mangle)]
        pub extern "C" fn polis_abi_version() -> i32 {
            $crate::ABI_VERSION
        }

        /// Reserves the request buffer.
        #[expect(unsafe_code, reason = "the ABI needs an unmangled export name")]
        #[unsafe(no_mangle)]
        pub extern "C" fn polis_alloc(len: i32) -> i32 {
            $crate::__alloc(len)
        }

        /// `validate_params`.
        #[expect(unsafe_code, reason = "the ABI needs an unmangled export name")]
        #[unsafe(no_mangle)]
        pub extern "C" fn polis_validate_params(_ptr: i32, len: i32) -> i64 {
            polis_answer("validate_params", len)
        }

        /// `required_features`.
        #[expect(unsafe_code, reason = "the ABI needs an unmangled export name")]
        #[unsafe(no_mangle)]
        pub extern "C" fn polis_required_features(_ptr: i32, len: i32) -> i64 {
            polis_answer("required_features", len)
        }

        /// `warmup_bars`.
        #[expect(unsafe_code, reason = "the ABI needs an unmangled export name")]
        #[unsafe(no_mangle)]
        pub extern "C" fn polis_warmup_bars(_ptr: i32, len: i32) -> i64 {
            polis_answer("warmup_bars", len)
        }

        /// `on_event`.
        #[expect(unsafe_code, reason = "the ABI needs an unmangled export name")]
        #[unsafe(no_mangle)]
        pub extern "C" fn polis_on_event(_ptr: i32, len: i32) -> i64 {
            polis_answer("on_event", len)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(request: Request<Vec<u32>, u32>) -> Result<Vec<u32>, Error> {
        if request.params == 0 {
            return Err(Error::Rejected("factor must be positive".to_owned()));
        }
        Ok(request.input.iter().map(|x| x * request.params).collect())
    }

    #[test]
    fn a_request_becomes_an_ok_reply() {
        assert_eq!(handle(br#"{"input":[1,2],"params":3}"#, double), br#"{"ok":[3,6]}"#);
    }

    #[test]
    fn policy_errors_and_bad_requests_become_error_replies() {
        assert_eq!(
            handle(br#"{"input":[1],"params":0}"#, double),
            br#"{"error":{"kind":"rejected","message":"factor must be positive"}}"#
        );
        let reply = String::from_utf8(handle(br#"{"input":"x","params":1}"#, double)).unwrap_or_default();
        assert!(reply.starts_with(r#"{"error":{"kind":"rejected","message":"request does not decode"#), "{reply}");
    }

    #[test]
    fn alloc_then_run_reads_the_written_request() {
        let ptr = __alloc(4);
        assert_ne!(ptr, 0);
        REQUEST.with(|b| b.borrow_mut().copy_from_slice(b"[1] "));
        // A request that is not an object is rejected, proving the buffer was read.
        let packed = __run(ptr, 3, double);
        let len = (packed as u64 & 0xffff_ffff) as usize;
        REPLY.with(|r| assert_eq!(r.borrow().len(), len));
        REPLY.with(|r| assert!(r.borrow().starts_with(br#"{"error""#)));
    }
}
