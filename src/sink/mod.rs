//! Output sinks. Each knows one destination and writes any
//! [`crate::image::Image`]: an export's assembled graph and a conversion's
//! new layout alike, so the bytes of a layout tar come from one writer
//! whatever produced the image.
//!
//! Why a trait per side: go-containerregistry's `tarball.Write`,
//! `layout.Write` and `remote.Write` all take the one `v1.Image`. Here an
//! image is what every reader reads (blobs by digest, the layout's
//! top-level files, the manifests with their subjects; [`crate::image`]),
//! and a [`Sink`] is one place it can go. Adding a destination means adding
//! one implementation of [`Sink`]; adding a kind of image means adding one
//! implementation of the image trait.
//!
//! - [`archive`]: the OCI layout tar (also the docker archive, and the
//!   layout directory, which `destination` unpacks from the stream).
//! - [`exported`]: an export's graph seen as an image.
//! - [`push`]: the one push planner: an image's blobs and manifests in push
//!   order, put into one repository.
//! - [`referrer_tags`]: the fallback and signature tags a push writes, in
//!   two waves that share one settle delay.
//! - [`registry`]: an export pushed to the repositories its names point at.
//! - [`schedule`]: which blob or manifest of a push may go next.
//! - [`tar`]: Go's tar bytes.

pub mod archive;
pub mod exported;
pub mod push;
pub mod referrer_tags;
pub mod registry;
pub mod schedule;
pub mod tar;

use crate::error::Result;
use crate::image::Image;
use crate::progress::Progress;

pub use archive::TarSink;
pub use exported::{ArchiveSpec, Exported};

/// One destination of images.
pub trait Sink {
    /// Writes `image`; `progress` hears of each blob streamed.
    fn write(&mut self, image: &dyn Image, progress: &mut dyn FnMut(Progress)) -> Result<()>;
}
