//! Output sinks. Each knows one destination and writes any [`Image`]: an
//! export's assembled graph and a conversion's new layout alike, so the
//! bytes of a layout tar come from one writer whatever produced the image.
//!
//! Why a trait per side: go-containerregistry's `tarball.Write`,
//! `layout.Write` and `remote.Write` all take the one `v1.Image`. Here an
//! [`Image`] is what a sink reads (blobs by digest, the layout's top-level
//! files), and a [`Sink`] is one place it can go. Adding a destination means
//! adding one implementation of [`Sink`]; adding a kind of image means
//! adding one implementation of [`Image`].
//!
//! - [`archive`]: the OCI layout tar (also the docker archive, and the
//!   layout directory, which `destination` unpacks from the stream).
//! - [`exported`]: an export's graph seen as an [`Image`].
//! - [`push`]: the one push planner: an [`Image`]'s blobs and
//!   manifests in push order, put into one repository.
//! - [`registry`]: an export pushed to the repositories its names point at.
//! - [`layout`]: the small files of a layout; [`tar`]: Go's tar bytes.

pub mod archive;
pub mod exported;
pub mod layout;
pub mod push;
pub mod registry;
pub mod tar;

use std::borrow::Cow;
use std::io::{self, Read};

use crate::error::Result;
use crate::oci::Descriptor;
use crate::progress::Progress;

pub use archive::TarSink;
pub use exported::{ArchiveSpec, Exported};

/// An image as the sinks read it: every blob by digest, and the files an
/// OCI layout holds besides its blobs.
pub trait Image {
    /// Every blob in `sha256:<hex>` order (a layout tar's order): its
    /// descriptor, and its bytes when they are held in memory.
    fn blobs(&self) -> Vec<(&Descriptor, Option<&[u8]>)>;

    /// Opens a blob that is not held in memory, for a reader that may run
    /// on another thread (a push's uploads).
    fn open(&self, d: &Descriptor) -> io::Result<Box<dyn Read + Send>>;

    /// Streams a blob that is not held in memory into `write`, which reads
    /// it to its end. An image may say more of a failure here, or check
    /// blobs it does not trust on the way.
    fn stream(
        &self,
        d: &Descriptor,
        write: &mut dyn FnMut(&mut dyn Read) -> io::Result<()>,
    ) -> Result<()> {
        let mut r = self.open(d)?;
        write(&mut r)?;
        Ok(())
    }

    /// The layout's `index.json`.
    fn index_json(&self) -> Cow<'_, [u8]>;

    /// Docker's `manifest.json`, when the image has one.
    fn manifest_json(&self) -> Option<Cow<'_, [u8]>>;

    /// The manifest or index a registry's tags name; `None` for a layout
    /// of several images, which no registry takes whole.
    fn root(&self) -> Option<&Descriptor>;

    /// Every manifest and index a push puts (all held in memory), in push
    /// order: a manifest before those naming it as subject, an index after
    /// what it lists; each with its subject's digest, kept in the model and
    /// never parsed back out of the bytes. Empty without a root.
    fn manifests(&self) -> Vec<(&Descriptor, Option<&str>)>;
}

/// One destination of images.
pub trait Sink {
    /// Writes `image`; `progress` hears of each blob streamed.
    fn write(&mut self, image: &dyn Image, progress: &mut dyn FnMut(Progress)) -> Result<()>;
}
