//! The copies a sweep lists up front, once per target region however many
//! sources it has, by region and provenance tag; and whether a source's
//! copies are as its status says (settled), so that the sweep can leave it
//! alone. Listing them is [`copies`](crate::copies)' job; this module only
//! holds and reads what was listed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use tracing::warn;

use crate::config::Config;
use crate::ec2::Ec2Error;
use crate::model::{Image, ImageId, RegionName, Status};
use crate::plan;

/// The copies of a sweep's sources, listed once per target region up front
/// (a call a region, however many sources), by region and provenance tag.
#[derive(Debug, Default)]
pub(crate) struct CopyIndex {
    by_region: HashMap<RegionName, HashMap<String, Vec<Image>>>,
    listed_at: Option<Instant>,
    /// Target regions whose copies could not be listed, and why: the sweep
    /// goes on without them (one region's failure never hides another's)
    /// and reports each once.
    pub(crate) unlisted: BTreeMap<RegionName, Ec2Error>,
}

impl CopyIndex {
    /// The index of the target regions' listings (copies by the provenance
    /// tag `source_key`); a region that could not be listed is kept with
    /// its error.
    pub(crate) fn new(
        source_key: &str,
        listings: Vec<Result<(RegionName, Vec<Image>), Ec2Error>>,
    ) -> Self {
        let mut index = Self {
            listed_at: Some(Instant::now()),
            ..Self::default()
        };
        for listing in listings {
            let (region, copies) = match listing {
                Ok(listed) => listed,
                Err(e) => {
                    warn!(region = %e.region, error = %e, "the copies in a target region could not be listed: the sweep goes on without it");
                    index.unlisted.insert(e.region.clone(), e);
                    continue;
                }
            };
            let by_source = index.by_region.entry(region).or_default();
            for copy in copies {
                if let Some(source) = copy.tags.get(source_key) {
                    by_source.entry(source.clone()).or_default().push(copy);
                }
            }
        }
        index
    }

    /// When the copies were listed.
    pub(crate) fn listed_at(&self) -> Option<Instant> {
        self.listed_at
    }

    /// The copies in `region` of the source `source_ref` (`region/ami-...`);
    /// `None` when the region was not listed.
    pub(crate) fn copies(&self, region: &RegionName, source_ref: &str) -> Option<Vec<Image>> {
        let by_source = self.by_region.get(region)?;
        Some(by_source.get(source_ref).cloned().unwrap_or_default())
    }

    /// The public copies of sources in `home` that `listed` does not hold
    /// (a sweep's listing of `home`: their source lost its tags, or is
    /// gone), to be reconciled on their own, with their source read.
    pub(crate) fn orphans(
        &self,
        home: &RegionName,
        listed: &HashSet<ImageId>,
    ) -> Vec<(RegionName, Image)> {
        let prefix = format!("{home}/");
        let mut orphans = Vec::new();
        for (region, by_source) in &self.by_region {
            for (source, copies) in by_source {
                let gone = source
                    .strip_prefix(&prefix)
                    .and_then(|id| ImageId::parse(id).ok())
                    .is_some_and(|id| !listed.contains(&id));
                if gone {
                    let public = copies.iter().filter(|c| c.public && c.owned);
                    orphans.extend(public.map(|c| (region.clone(), c.clone())));
                }
            }
        }
        orphans.sort_by(|a, b| a.1.id.cmp(&b.1.id));
        orphans
    }

    /// Whether a sweep can leave this AMI's copies alone: a public source
    /// with status `public` has a live, public copy with status `public` in
    /// every target region; a held one has no public copy left.
    pub(crate) fn settles(&self, image: &Image, config: &Config) -> bool {
        // A region whose copies could not be listed can't be checked: it
        // is reported once for the sweep, not once per source.
        let targets: Vec<RegionName> = plan::copy_targets(image, config)
            .into_iter()
            .filter(|r| !self.unlisted.contains_key(r))
            .collect();
        if targets.is_empty() {
            return true;
        }
        let source_ref = format!("{}/{}", image.region, image.id);
        let copies = |region: &RegionName| self.copies(region, &source_ref);
        match plan::status_of(image, config) {
            Some(Status::Held) => targets
                .iter()
                .all(|r| copies(r).is_some_and(|c| c.iter().all(|c| !c.public))),
            Some(Status::Public) if image.public && plan::is_tagged(image, config) => {
                // The copy still tagged (its owner may untag a copy alone)
                // and deprecated no later than its source.
                let deprecate_by = plan::copies_deprecate_at(image, config);
                targets.iter().all(|r| {
                    copies(r).is_some_and(|c| {
                        c.iter().any(|c| {
                            c.state.is_live()
                                && c.public
                                && plan::status_of(c, config) == Some(Status::Public)
                                && plan::is_tagged(c, config)
                                && c.deprecation_time.is_some()
                                && c.deprecation_time <= deprecate_by
                        })
                    })
                })
            }
            _ => true,
        }
    }
}
