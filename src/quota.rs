//! The public AMI quota, known before anything is made public or copied
//! into a region: the quota (Service Quotas "Public AMIs", L-0E3CBAB9, or
//! AWS's default of 5 when it can't be read), the account's public AMIs
//! there, and the AMIs in the region's Recycle Bin (public ones count
//! toward the quota; EC2 does not say which were public). One invocation
//! keeps one book per region: each AMI made public or copy started takes a
//! slot, so a sweep never goes over the quota, and no second count is made.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Mutex;

use crate::clients::Clients;
use crate::ec2::{self, Ec2Error};
use crate::model::RegionName;
use crate::service_quotas::{self, DEFAULT_PUBLIC_AMIS, PUBLIC_AMIS_QUOTA_CODE};

/// How long a quota read from Service Quotas is reused by a warm function:
/// it changes only when the owner raises it.
const QUOTA_TTL: Duration = Duration::from_secs(3600);

/// A region's public AMI quota and its use, as the outcome reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QuotaReport {
    pub region: RegionName,
    pub quota: u32,
    /// `service-quotas`, or why AWS's default of 5 is assumed.
    pub quota_source: String,
    /// The account's public AMIs in the region when counted, plus those this
    /// invocation made public or started copies of.
    pub public: usize,
    /// AMIs in the region's Recycle Bin: the public ones among them count too.
    pub in_recycle_bin: usize,
    /// `quota - public`: at most this many more may be made public.
    pub headroom: i64,
}

/// Why an AMI may not take a public slot in a region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoHeadroom(pub QuotaReport);

impl NoHeadroom {
    /// The reason written on the AMI: the quota, the count, how to raise it.
    pub fn reason(&self) -> String {
        let r = &self.0;
        let bin = if r.in_recycle_bin > 0 {
            format!(
                " (and {} AMIs in the Recycle Bin, which count if they were public)",
                r.in_recycle_bin
            )
        } else {
            String::new()
        };
        format!(
            "the public AMI quota in {} is reached: {} public of {}{bin}{}; make public AMIs private or deregister them, or raise the quota (Service Quotas: Amazon EC2, Public AMIs, {PUBLIC_AMIS_QUOTA_CODE})",
            r.region,
            r.public,
            r.quota,
            if r.quota_source == "service-quotas" {
                String::new()
            } else {
                format!(", assumed: {}", r.quota_source)
            },
        )
    }
}

/// Quotas read from Service Quotas, reused across invocations for
/// [`QUOTA_TTL`].
#[derive(Debug, Default)]
pub struct QuotaCache {
    read: SyncMutex<HashMap<RegionName, (u32, Instant)>>,
}

impl QuotaCache {
    fn get(&self, region: &RegionName) -> Option<u32> {
        let read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        read.get(region)
            .filter(|(_, at)| at.elapsed() < QUOTA_TTL)
            .map(|(quota, _)| *quota)
    }

    fn put(&self, region: &RegionName, quota: u32) {
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        read.insert(region.clone(), (quota, Instant::now()));
    }
}

#[derive(Clone, Debug)]
struct Book {
    quota: u32,
    source: String,
    public: usize,
    in_recycle_bin: usize,
}

impl Book {
    fn report(&self, region: &RegionName) -> QuotaReport {
        QuotaReport {
            region: region.clone(),
            quota: self.quota,
            quota_source: self.source.clone(),
            public: self.public,
            in_recycle_bin: self.in_recycle_bin,
            headroom: i64::from(self.quota) - self.public as i64,
        }
    }
}

/// One invocation's books, by region. Each region has its own lock, held
/// while that region is counted: regions are counted at the same time, and
/// a region is counted once however many AMIs wait for its book.
#[derive(Debug, Default)]
pub struct Quotas {
    books: SyncMutex<BTreeMap<RegionName, Arc<Mutex<Option<Book>>>>>,
}

impl Quotas {
    /// Takes a public slot in `region` for one AMI (or the copy that will be
    /// one), counting the region first if this invocation has not yet.
    /// `Ok(Err(_))`: no headroom; `Err(_)`: the count could not be made.
    pub async fn take(
        &self,
        clients: &Clients,
        cache: &QuotaCache,
        region: &RegionName,
    ) -> Result<Result<(), NoHeadroom>, Ec2Error> {
        let entry = self.region(region);
        let mut entry = entry.lock().await;
        let book = match &mut *entry {
            Some(known) => known,
            unknown => {
                let book = count(clients, cache, region).await?;
                tracing::info!(region = %region, quota = book.quota, quota_source = %book.source, public = book.public, in_recycle_bin = book.in_recycle_bin, "public AMI quota");
                unknown.insert(book)
            }
        };
        if book.public >= book.quota as usize {
            return Ok(Err(NoHeadroom(book.report(region))));
        }
        book.public += 1;
        Ok(Ok(()))
    }

    /// Gives back a slot taken for an AMI that did not become public (its
    /// call failed).
    pub async fn give_back(&self, region: &RegionName) {
        if let Some(book) = self.region(region).lock().await.as_mut() {
            book.public = book.public.saturating_sub(1);
        }
    }

    /// The books of the regions counted, for the outcome.
    pub async fn reports(&self) -> Vec<QuotaReport> {
        let regions: Vec<_> = self
            .books
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(region, entry)| (region.clone(), Arc::clone(entry)))
            .collect();
        let mut reports = Vec::with_capacity(regions.len());
        for (region, entry) in regions {
            if let Some(book) = entry.lock().await.as_ref() {
                reports.push(book.report(&region));
            }
        }
        reports
    }

    /// The lock on `region`'s book (not yet counted: `None`).
    fn region(&self, region: &RegionName) -> Arc<Mutex<Option<Book>>> {
        let mut books = self.books.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(books.entry(region.clone()).or_default())
    }
}

async fn count(
    clients: &Clients,
    cache: &QuotaCache,
    region: &RegionName,
) -> Result<Book, Ec2Error> {
    let ec2 = clients.ec2(region).ok_or_else(|| {
        Ec2Error::permanent(
            "DescribeImages",
            region,
            None,
            "NoClient",
            format!("no EC2 client for {region}"),
        )
    })?;
    let (quota, source) = match cache.get(region) {
        Some(quota) => (quota, "service-quotas".to_owned()),
        None => read_quota(clients, cache, region).await?,
    };
    let public = ec2::count_public_images(&ec2, region).await?;
    let in_recycle_bin = ec2::count_images_in_recycle_bin(&ec2, region).await?;
    Ok(Book {
        quota,
        source,
        public,
        in_recycle_bin,
    })
}

/// The quota from Service Quotas, or AWS's default when it can't be read
/// (no permission, no applied value, ...), saying which. A failure a retry
/// may fix (throttling, a timeout) is an error: assuming 5 could refuse an
/// AMI that a raised quota has room for.
async fn read_quota(
    clients: &Clients,
    cache: &QuotaCache,
    region: &RegionName,
) -> Result<(u32, String), Ec2Error> {
    let Some(client) = clients.quotas(region) else {
        return Ok((
            DEFAULT_PUBLIC_AMIS,
            "AWS's default: no Service Quotas client".to_owned(),
        ));
    };
    Ok(match service_quotas::public_amis(&client, region).await {
        Ok(quota) => {
            cache.put(region, quota);
            (quota, "service-quotas".to_owned())
        }
        Err(e) if e.transient => return Err(e),
        Err(e) => {
            tracing::warn!(region = %region, error = %e, "Service Quotas unreadable: assuming AWS's default of {DEFAULT_PUBLIC_AMIS} public AMIs");
            (
                DEFAULT_PUBLIC_AMIS,
                format!(
                    "AWS's default: Service Quotas could not be read ({})",
                    e.code
                ),
            )
        }
    })
}
