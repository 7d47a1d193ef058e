//! The SPDX 2.3 document model as BuildKit reads and writes it.
//!
//! BuildKit supplements the core SPDX SBOM of an image (see
//! `assemble::sbom`) by decoding it into the SPDX 2.3 Go types of
//! `github.com/spdx/tools-golang` and encoding it again with `encoding/json`.
//! The statement digest depends on every byte of that round trip, so this
//! module reproduces it: the same fields in the same order, the same
//! `omitempty` rules (`copyrightText` is written on every file, `checksums`
//! and `creators` as `null` when absent), the same custom encodings (ids with
//! their `SPDXRef-` prefix, creators as `"Tool: name"`), the same defaults
//! (`filesAnalyzed` is true when absent) and the relationships the decoder
//! derives from `documentDescribes` and `hasFiles`. Unknown fields are
//! dropped. Written by hand over `serde_json`'s raw values, because no crate
//! reproduces Go's decoding rules (see `decode`).
//!
//! Only `SPDX-2.3` documents decode. BuildKit also converts 2.1 and 2.2
//! documents to 2.3 before writing them; here those, like anything that is
//! not an SPDX 2.3 JSON document, are reported as not decodable and left as
//! they are.

mod decode;
mod encode;
mod ids;

use std::collections::BTreeSet;

use serde_json::value::RawValue;

use decode::{Decoded, GoDecode, Invalid};
pub use encode::EncodeError;
use encode::{Encoded, GoEncode};
pub use ids::{Annotator, Creator, DocElementId, DocumentId, ElementId, Originator, Supplier};

const VERSION: &str = "SPDX-2.3";

/// Declares a Go struct: its fields with their JSON keys (and `omitempty`),
/// the plain decoder and the encoder in declaration order. `internal` fields
/// are not in the JSON.
macro_rules! go_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $field:ident : $ty:ty => $key:literal $($omit:ident)? ),* $(,)?
        }
        $( internal { $( $ifield:ident : $ity:ty ),* $(,)? } )?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $name {
            $( pub $field: $ty, )*
            $( $( $ifield: $ity, )* )?
        }

        impl $name {
            const KEYS: &'static [&'static str] = &[$($key),*];

            #[allow(unused_assignments)]
            fn decode_plain(&mut self, raw: &RawValue) -> Decoded {
                decode::fields(raw, Self::KEYS, |i, v| {
                    let mut n = 0usize;
                    $(
                        if i == n {
                            return self.$field.decode(v);
                        }
                        n += 1;
                    )*
                    Ok(())
                })
            }

            fn encode_plain(&self, out: &mut String) -> Encoded {
                let mut o = encode::Fields::new(out);
                $( o.field($key, &self.$field, go_struct!(@omit $($omit)?))?; )*
                o.end();
                Ok(())
            }
        }
    };
    (@omit omitempty) => { true };
    (@omit) => { false };
}

/// The structs without a decoder or encoder of their own.
macro_rules! plain_codec {
    ($($name:ident),*) => {$(
        impl GoDecode for $name {
            fn decode(&mut self, raw: &RawValue) -> Decoded {
                self.decode_plain(raw)
            }
        }
        plain_encode!($name);
    )*};
}

macro_rules! plain_encode {
    ($($name:ident),*) => {$(
        impl GoEncode for $name {
            fn encode(&self, out: &mut String) -> Encoded {
                self.encode_plain(out)
            }
            fn is_empty(&self) -> bool {
                false
            }
        }
    )*};
}

type Ptr<T> = Option<Box<T>>;
type Slice<T> = Option<Vec<T>>;

go_struct! {
    pub struct Document {
        spdx_version: String => "spdxVersion",
        data_license: String => "dataLicense",
        spdx_id: ElementId => "SPDXID",
        name: String => "name",
        namespace: String => "documentNamespace",
        external_refs: Slice<ExternalDocumentRef> => "externalDocumentRefs" omitempty,
        comment: String => "comment" omitempty,
        creation_info: Ptr<CreationInfo> => "creationInfo",
        packages: Slice<Ptr<Package>> => "packages" omitempty,
        files: Slice<Ptr<File>> => "files" omitempty,
        other_licenses: Slice<Ptr<OtherLicense>> => "hasExtractedLicensingInfos" omitempty,
        relationships: Slice<Ptr<Relationship>> => "relationships" omitempty,
        annotations: Slice<Ptr<Annotation>> => "annotations" omitempty,
        snippets: Slice<Snippet> => "snippets" omitempty,
    }
}

go_struct! {
    pub struct ExternalDocumentRef {
        id: DocumentId => "externalDocumentId",
        uri: String => "spdxDocument",
        checksum: Checksum => "checksum",
    }
}

go_struct! {
    pub struct Checksum {
        algorithm: String => "algorithm",
        value: String => "checksumValue",
    }
}

go_struct! {
    pub struct CreationInfo {
        license_list_version: String => "licenseListVersion" omitempty,
        creators: Slice<Creator> => "creators",
        created: String => "created",
        comment: String => "comment" omitempty,
    }
}

go_struct! {
    pub struct Package {
        name: String => "name",
        spdx_id: ElementId => "SPDXID",
        version: String => "versionInfo" omitempty,
        file_name: String => "packageFileName" omitempty,
        supplier: Ptr<Supplier> => "supplier" omitempty,
        originator: Ptr<Originator> => "originator" omitempty,
        download_location: String => "downloadLocation",
        files_analyzed: bool => "filesAnalyzed",
        verification_code: Ptr<VerificationCode> => "packageVerificationCode" omitempty,
        checksums: Slice<Checksum> => "checksums" omitempty,
        home_page: String => "homepage" omitempty,
        source_info: String => "sourceInfo" omitempty,
        license_concluded: String => "licenseConcluded" omitempty,
        license_info_from_files: Slice<String> => "licenseInfoFromFiles" omitempty,
        license_declared: String => "licenseDeclared" omitempty,
        license_comments: String => "licenseComments" omitempty,
        copyright_text: String => "copyrightText" omitempty,
        summary: String => "summary" omitempty,
        description: String => "description" omitempty,
        comment: String => "comment" omitempty,
        external_refs: Slice<Ptr<ExternalRef>> => "externalRefs" omitempty,
        attribution_texts: Slice<String> => "attributionTexts" omitempty,
        primary_purpose: String => "primaryPackagePurpose" omitempty,
        release_date: String => "releaseDate" omitempty,
        built_date: String => "builtDate" omitempty,
        valid_until_date: String => "validUntilDate" omitempty,
        files: Slice<Ptr<File>> => "files" omitempty,
        annotations: Slice<Annotation> => "annotations" omitempty,
    }
    internal {
        has_files: Slice<DocElementId>,
    }
}

go_struct! {
    pub struct VerificationCode {
        value: String => "packageVerificationCodeValue",
        excluded_files: Slice<String> => "packageVerificationCodeExcludedFiles" omitempty,
    }
}

go_struct! {
    pub struct ExternalRef {
        category: String => "referenceCategory",
        ref_type: String => "referenceType",
        locator: String => "referenceLocator",
        comment: String => "comment" omitempty,
    }
}

go_struct! {
    pub struct File {
        file_name: String => "fileName",
        spdx_id: ElementId => "SPDXID",
        file_types: Slice<String> => "fileTypes" omitempty,
        checksums: Slice<Checksum> => "checksums",
        license_concluded: String => "licenseConcluded" omitempty,
        license_info_in_files: Slice<String> => "licenseInfoInFiles" omitempty,
        license_comments: String => "licenseComments" omitempty,
        copyright_text: String => "copyrightText",
        artifact_of: Slice<Ptr<ArtifactOfProject>> => "artifactOfs" omitempty,
        comment: String => "comment" omitempty,
        notice: String => "noticeText" omitempty,
        contributors: Slice<String> => "fileContributors" omitempty,
        attribution_texts: Slice<String> => "attributionTexts" omitempty,
        dependencies: Slice<String> => "fileDependencies" omitempty,
        annotations: Slice<Annotation> => "annotations" omitempty,
    }
}

go_struct! {
    pub struct ArtifactOfProject {
        name: String => "name",
        home_page: String => "homePage",
        uri: String => "URI",
    }
}

go_struct! {
    pub struct OtherLicense {
        id: String => "licenseId",
        extracted_text: String => "extractedText",
        name: String => "name" omitempty,
        see_also: Slice<String> => "seeAlsos" omitempty,
        comment: String => "comment" omitempty,
    }
}

go_struct! {
    pub struct Relationship {
        a: DocElementId => "spdxElementId",
        b: DocElementId => "relatedSpdxElement",
        kind: String => "relationshipType",
        comment: String => "comment" omitempty,
    }
}

go_struct! {
    pub struct Annotation {
        annotator: Annotator => "annotator",
        date: String => "annotationDate",
        kind: String => "annotationType",
        comment: String => "comment",
    }
}

go_struct! {
    pub struct Snippet {
        spdx_id: ElementId => "SPDXID",
        from_file: ElementId => "snippetFromFile",
        ranges: Slice<SnippetRange> => "ranges",
        license_concluded: String => "licenseConcluded" omitempty,
        license_info: Slice<String> => "licenseInfoInSnippets" omitempty,
        license_comments: String => "licenseComments" omitempty,
        copyright_text: String => "copyrightText",
        comment: String => "comment" omitempty,
        name: String => "name" omitempty,
    }
}

go_struct! {
    pub struct SnippetRange {
        start: RangePointer => "startPointer",
        end: RangePointer => "endPointer",
    }
}

go_struct! {
    pub struct RangePointer {
        offset: i64 => "offset" omitempty,
        line: i64 => "lineNumber" omitempty,
        reference: ElementId => "reference",
    }
}

plain_codec!(
    ExternalDocumentRef,
    Checksum,
    CreationInfo,
    VerificationCode,
    File,
    ArtifactOfProject,
    OtherLicense,
    Relationship,
    Annotation,
    Snippet,
    SnippetRange,
    RangePointer
);
plain_encode!(Document, Package);

/// A reference category is written with dashes (`PACKAGE-MANAGER`), whichever
/// form it was read in.
impl GoDecode for ExternalRef {
    fn decode(&mut self, raw: &RawValue) -> Decoded {
        let mut r = ExternalRef::default();
        r.decode_plain(raw)?;
        r.category = r.category.replace('_', "-");
        *self = r;
        Ok(())
    }
}

impl GoEncode for ExternalRef {
    fn encode(&self, out: &mut String) -> Encoded {
        let mut r = self.clone();
        r.category = r.category.replace('_', "-");
        r.encode_plain(out)
    }
    fn is_empty(&self) -> bool {
        false
    }
}

/// A package decodes afresh; `filesAnalyzed` defaults to true, and `hasFiles`
/// is kept for the document to turn into relationships.
impl GoDecode for Package {
    fn decode(&mut self, raw: &RawValue) -> Decoded {
        let mut p = Package::default();
        p.decode_plain(raw)?;
        let mut has_files: Slice<DocElementId> = None;
        let mut files_analyzed: Ptr<bool> = None;
        decode::fields(raw, &["hasFiles", "filesAnalyzed"], |i, v| match i {
            0 => has_files.decode(v),
            _ => files_analyzed.decode(v),
        })?;
        p.has_files = has_files;
        if files_analyzed.is_none() {
            p.files_analyzed = true;
        }
        *self = p;
        Ok(())
    }
}

/// The key the Go decoder uses to avoid adding a relationship twice.
fn relationship_key(r: &Relationship) -> String {
    let (a, b, kind) = match r.kind.as_str() {
        "CONTAINED_BY" => (&r.b, &r.a, "CONTAINS"),
        "DESCRIBED_BY" => (&r.b, &r.a, "DESCRIBES"),
        k => (&r.a, &r.b, k),
    };
    format!("{}-{}->{}", a.render(), kind, b.render())
}

impl Document {
    /// Decodes an SPDX 2.3 JSON document as BuildKit does; `None` when it is
    /// not one (BuildKit then leaves the SBOM as it is).
    pub fn decode(bytes: &[u8]) -> Option<Document> {
        let text = std::str::from_utf8(bytes).ok()?;
        let top: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text).ok()?;
        if top.get("spdxVersion").and_then(|v| v.as_str()) != Some(VERSION) {
            return None;
        }
        let raw: &RawValue = serde_json::from_str(text).ok()?;
        let mut doc = Document::default();
        doc.decode_with_extras(raw).ok()?;
        Some(doc)
    }

    fn decode_with_extras(&mut self, raw: &RawValue) -> Decoded {
        let mut d = Document::default();
        d.decode_plain(raw)?;
        let mut describes: Slice<DocElementId> = None;
        decode::fields(raw, &["documentDescribes"], |_, v| describes.decode(v))?;
        // A nil package makes the Go decoder fail (it dereferences it).
        let packages: Vec<&mut Package> = match d.packages.as_mut() {
            Some(ps) => ps
                .iter_mut()
                .map(|p| p.as_deref_mut().ok_or(Invalid))
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        let mut added = Vec::new();
        for id in describes.into_iter().flatten() {
            added.push(Relationship {
                a: DocElementId {
                    element: d.spdx_id.0.clone(),
                    ..Default::default()
                },
                b: id,
                kind: "DESCRIBES".into(),
                comment: String::new(),
            });
        }
        for p in packages {
            for f in p.has_files.take().into_iter().flatten() {
                added.push(Relationship {
                    a: DocElementId {
                        element: p.spdx_id.0.clone(),
                        ..Default::default()
                    },
                    b: f,
                    kind: "CONTAINS".into(),
                    comment: String::new(),
                });
            }
        }
        if let Some(rels) = d.relationships.as_mut() {
            rels.retain(Option::is_some);
        }
        let mut seen: BTreeSet<String> = d
            .relationships
            .iter()
            .flatten()
            .flatten()
            .map(|r| relationship_key(r))
            .collect();
        for r in added {
            if seen.insert(relationship_key(&r)) {
                d.relationships
                    .get_or_insert_with(Vec::new)
                    .push(Some(Box::new(r)));
            }
        }
        *self = d;
        Ok(())
    }

    /// The document as Go's `json.Encoder` writes it, without the trailing
    /// newline (the statement compacts it away).
    pub fn encode(&self) -> Result<String, EncodeError> {
        let mut out = String::new();
        self.encode_plain(&mut out)?;
        Ok(out)
    }

    /// Every file of the document: top level first, then each package's.
    pub fn files_mut(&mut self) -> impl Iterator<Item = &mut File> {
        let top = self.files.iter_mut().flatten().flatten();
        let in_packages = self
            .packages
            .iter_mut()
            .flatten()
            .flatten()
            .flat_map(|p| p.files.iter_mut().flatten().flatten());
        top.chain(in_packages).map(|f| &mut **f)
    }

    /// Appends a creator, creating the creation info when there is none.
    pub fn add_creator(&mut self, c: Creator) {
        self.creation_info
            .get_or_insert_with(Default::default)
            .creators
            .get_or_insert_with(Vec::new)
            .push(c);
    }
}

#[cfg(test)]
mod tests;
