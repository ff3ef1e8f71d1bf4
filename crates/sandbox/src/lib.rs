//! # kit-sandbox — a faithful local Kit
//!
//! **Skeleton.** An independent, in-memory implementation of Kit's OAuth 2.0 server and the part
//! of API v4 an app touches first, with fault injection, a control API and an App Store
//! simulation. It depends on no other crate of this workspace, so a bug shared with the client
//! cannot hide.
