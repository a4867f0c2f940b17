//! The native PHP backend: the official engine (libphp, embed SAPI) started once in a
//! zygote process, and workers forked from it on the pool's command.
//!
//! Owns: loading the engine host (`c/isola_php.c`, built by build.rs and embedded in the
//! binary) inside the `__php-zygote` process ([`zygote`]), and, in the server, starting
//! and restarting that zygote, asking it for workers and watching them through pidfds
//! ([`native`]). A worker speaks FastCGI on one connected socket, so the front's exchange
//! code serves both backends unchanged.
//!
//! Never: decides when a worker starts or stops (the pool does), runs PHP in the server
//! process, or lets PHP's longjmp-based error handling cross into Rust (every PHP callback
//! is C).
pub mod native;
pub mod zygote;

pub use native::{Native, NativeRecipe, NativeWorker};

/// Whether this binary carries the engine host, and if not, why.
pub fn built_in() -> Result<(), &'static str> {
    if cfg!(isola_native) {
        Ok(())
    } else {
        Err("this isola was built without the native PHP backend (php-config was not found at build time: install php8.2-dev and libphp8.2-embed, then rebuild)")
    }
}

/// The PHP version the engine host was compiled against, when it was.
pub fn build_php_version() -> Option<&'static str> {
    option_env!("ISOLA_PHP_BUILD_VERSION")
}
