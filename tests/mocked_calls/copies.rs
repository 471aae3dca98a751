//! A source's copies: started once per target region, found again by their
//! tag, replaced when dead, published in their region, refused where they
//! could never be public.

use super::*;

struct Region {
    name: &'static str,
    find: Rule,
    copy: Rule,
}

fn target_region(name: &'static str, existing: Option<Image>, copy: Rule) -> Region {
    Region {
        name,
        find: find_copy(existing),
        copy,
    }
}

fn copy_config() -> Config {
    config(&[("TARGET_REGIONS", &TARGETS.join(","))])
}

fn source_publisher(source: Image, targets: &[Region], home_rules: &[&Rule]) -> Publisher {
    let describe = describe_owned(Some(source));
    let mut rules: Vec<&Rule> = vec![&describe];
    rules.extend_from_slice(home_rules);
    let mut clients = vec![(HOME, client(&rules))];
    for t in targets {
        clients.push((t.name, client(&[&t.find, &t.copy])));
    }
    publisher(copy_config(), clients)
}

#[tokio::test]
async fn first_run_starts_one_copy_per_target_region() {
    let targets: Vec<Region> = TARGETS
        .iter()
        .map(|t| target_region(t, None, copy_ok(t)))
        .collect();
    let (bpa, modify, tag) = (
        bpa("unblocked", ManagedBy::Account),
        make_public_ok(),
        create_tags_expecting(&[("publish:status", "copying")]),
    );
    let p = source_publisher(eligible().build(), &targets, &[&bpa, &modify, &tag]);

    let outcome = run(&p, direct()).await.unwrap();

    for t in &targets {
        assert_eq!(
            (t.name, t.find.num_calls(), t.copy.num_calls()),
            (t.name, 1, 1)
        );
    }
    let copies = &outcome.images[0].copies;
    let regions: Vec<&str> = copies.iter().map(|c| c.region.as_str()).collect();
    assert_eq!(regions, TARGETS, "reported in configured order");
    assert!(
        copies
            .iter()
            .all(|c| c.started && c.state.as_deref() == Some("pending"))
    );
    assert_eq!(outcome.images[0].status, Some(Status::Copying));
}

/// Every target region with a copy in `state` found by its tag.
fn targets_with_copies(state: ImageState, public: bool) -> Vec<Region> {
    TARGETS
        .iter()
        .map(|t| {
            let existing = existing_copy(t, state.clone(), public);
            target_region(t, Some(existing), copy_ok(t))
        })
        .collect()
}

#[tokio::test]
async fn replay_finds_every_copy_by_its_tag_and_copies_nothing() {
    let targets = targets_with_copies(ImageState::Pending, false);
    let source = public_source_copying();
    let (modify, tag) = (make_public_ok(), create_tags_ok());
    let p = source_publisher(source, &targets, &[&modify, &tag]);

    let outcome = run(&p, direct()).await.unwrap();

    let copy_calls: usize = targets.iter().map(|t| t.copy.num_calls()).sum();
    assert_eq!(copy_calls, 0, "no second copy");
    assert_eq!(modify.num_calls(), 0);
    assert!(outcome.images[0].copies.iter().all(|c| !c.started));
}

#[tokio::test]
async fn source_turns_public_once_every_copy_is_public() {
    let targets = targets_with_copies(ImageState::Available, true);
    let source = public_source_copying();
    let tag = create_tags_expecting(&[("publish:status", "public")]);
    let p = source_publisher(source, &targets, &[&tag]);

    let outcome = run(&p, direct()).await.unwrap();

    assert_eq!(outcome.images[0].status, Some(Status::Public));
    assert_eq!(tag.num_calls(), 1);
}

fn copy_failing(code: &'static str) -> Rule {
    mock!(Client::copy_image).then_error(move || {
        CopyImageError::generic(
            ErrorMetadata::builder()
                .code(code)
                .message("injected")
                .build(),
        )
    })
}

/// Every target region without a copy; CopyImage fails with `code` in `failing`.
fn targets_without_copies_failing_in(failing: &str, code: &'static str) -> Vec<Region> {
    TARGETS
        .iter()
        .map(|t| {
            let copy = if *t == failing {
                copy_failing(code)
            } else {
                copy_ok(t)
            };
            target_region(t, None, copy)
        })
        .collect()
}

#[tokio::test]
async fn throttled_region_is_retried_by_the_sdk_then_reported_while_others_finish() {
    let targets = targets_without_copies_failing_in("eu-west-1", "RequestLimitExceeded");
    let (bpa, modify, tag) = (
        bpa("unblocked", ManagedBy::Account),
        make_public_ok(),
        create_tags_expecting(&[("publish:status", "error")]),
    );
    let p = source_publisher(eligible().build(), &targets, &[&bpa, &modify, &tag]);

    let err = run(&p, direct()).await.unwrap_err();

    let throttled = targets.iter().find(|t| t.name == "eu-west-1").unwrap();
    assert_eq!(
        throttled.copy.num_calls(),
        3,
        "the SDK's standard retry makes 3 attempts"
    );
    for t in targets.iter().filter(|t| t.name != "eu-west-1") {
        assert_eq!(t.copy.num_calls(), 1, "{} still copied", t.name);
    }
    let text = err.to_string();
    assert!(
        text.contains("eu-west-1") && text.contains("RequestLimitExceeded"),
        "{text}"
    );
    assert!(
        !text.contains("us-west-2"),
        "only the failed region is listed: {text}"
    );
    assert_eq!(
        modify.num_calls(),
        1,
        "the source's own region is still published"
    );
}

#[tokio::test]
async fn one_region_out_of_copy_capacity_is_rejected_there_while_three_others_copy() {
    let targets = targets_without_copies_failing_in("ap-southeast-2", "ResourceLimitExceeded");
    let (bpa, modify, tag) = (
        bpa("unblocked", ManagedBy::Account),
        make_public_ok(),
        create_tags_expecting(&[("publish:status", "copying")]),
    );
    let p = source_publisher(eligible().build(), &targets, &[&bpa, &modify, &tag]);

    let outcome = run(&p, direct())
        .await
        .expect("a limit a retry can't fix now is an outcome, not an error");

    let calls: Vec<(&str, usize)> = targets
        .iter()
        .map(|t| (t.name, t.copy.num_calls()))
        .collect();
    assert_eq!(
        calls,
        [
            ("us-west-2", 1),
            ("eu-west-1", 1),
            ("eu-central-1", 1),
            ("ap-southeast-2", 1)
        ],
        "ResourceLimitExceeded is not retried by the SDK"
    );
    let image = &outcome.images[0];
    let full = image
        .copies
        .iter()
        .find(|c| c.region.as_str() == "ap-southeast-2")
        .unwrap();
    assert_eq!(full.action, Some(Action::Rejected));
    assert!(
        full.reasons[0].contains("too many copies in progress"),
        "{:?}",
        full.reasons
    );
    assert_eq!(
        image.status,
        Some(Status::Copying),
        "the sweep takes it up again"
    );
}

/// An account whose IAM evaluates CopyImage otherwise than the role was
/// written for (README, "First deploy"): the region's copy is rejected with
/// the statements to look at, not retried, and the other regions copy.
#[tokio::test]
async fn a_copy_iam_refuses_names_the_role_statements_to_check() {
    let targets = targets_without_copies_failing_in("eu-west-1", "UnauthorizedOperation");
    let (bpa, modify, tag) = (
        bpa("unblocked", ManagedBy::Account),
        make_public_ok(),
        create_tags_expecting(&[("publish:status", "copying")]),
    );
    let p = source_publisher(eligible().build(), &targets, &[&bpa, &modify, &tag]);

    let outcome = run(&p, direct())
        .await
        .expect("a refusal a retry can't fix is an outcome, not an error");

    let refused = outcome.images[0]
        .copies
        .iter()
        .find(|c| c.region.as_str() == "eu-west-1")
        .unwrap();
    assert_eq!(refused.action, Some(Action::Rejected));
    let reason = &refused.reasons[0];
    for statement in [
        "CopyFromOwnImages",
        "CopyCreatesMarkedImage",
        "DenyPublishAndFamilyTagKeys",
    ] {
        assert!(reason.contains(statement), "{statement} named: {reason}");
    }
    assert!(reason.contains(SOURCE_ID), "{reason}");
    for t in targets.iter().filter(|t| t.name != "eu-west-1") {
        assert_eq!(t.copy.num_calls(), 1, "{} still copied", t.name);
    }
}

/// A stack in a copy's region, handling the copy's own `available` event:
/// it reads the source in the source's region first. Returns the outcome
/// and the calls (source reads at home; deprecations, ModifyImageAttribute
/// and CopyImage in the copy's region).
async fn copy_event_in_its_region(source: Image) -> (Outcome, [usize; 4]) {
    let copy = existing_copy("us-west-2", ImageState::Available, false);
    let describe = mock!(Client::describe_images)
        .match_requests(|r| r.owners() == ["self"] && r.image_ids() == [copy_id("us-west-2")])
        .then_output(move || DescribeImagesOutput::builder().images(copy.clone()).build());
    let bpa = bpa("unblocked", ManagedBy::Account);
    // The copy is deprecated when its source is, before it is made public.
    let deprecate = mock!(Client::enable_image_deprecation)
        .match_requests(|r| {
            r.image_id() == Some(copy_id("us-west-2").as_str())
                && r.deprecate_at().map(|d| d.secs())
                    == Some(datetime!(2028-11-01 00:00 UTC).unix_timestamp())
        })
        .then_output(|| EnableImageDeprecationOutput::builder().build());
    let modify = mock!(Client::modify_image_attribute)
        .then_output(|| ModifyImageAttributeOutput::builder().build());
    let tag = create_tags_ok();
    let copy_rule = mock!(Client::copy_image)
        .then_output(|| CopyImageOutput::builder().image_id("ami-99999999").build());
    let read_source = describe_owned(Some(source));
    let mut clients = vec![(
        "us-west-2",
        client(&[&describe, &bpa, &deprecate, &modify, &tag, &copy_rule]),
    )];
    for t in TARGETS.iter().filter(|t| **t != "us-west-2") {
        clients.push((t, client(&[&copy_rule])));
    }
    clients.push((HOME, client(&[&read_source, &copy_rule])));
    let p = publisher(copy_config(), clients);

    let outcome = run(
        &p,
        json!({"image_id": copy_id("us-west-2"), "region": "us-west-2"}),
    )
    .await
    .unwrap();

    let calls = [
        read_source.num_calls(),
        deprecate.num_calls(),
        modify.num_calls(),
        copy_rule.num_calls(),
    ];
    (outcome, calls)
}

#[tokio::test]
async fn a_copy_is_published_in_its_region_with_its_sources_deprecation_and_never_copied_onward() {
    let (outcome, [reads, deprecations, modify, copies]) =
        copy_event_in_its_region(public_source_copying()).await;

    assert_eq!(outcome.images[0].action, Action::Published);
    assert!(outcome.images[0].copies.is_empty());
    // The source is read for the decision, and again right before the
    // copy's `all` (it may have been untagged meanwhile).
    assert_eq!((reads, deprecations, modify, copies), (2, 1, 1, 0));
}

#[tokio::test]
async fn a_copy_of_a_source_no_longer_tagged_stays_private() {
    let untagged = eligible()
        .public(true)
        .deprecation_time(PUBLIC_DEPRECATION)
        .set_tags(Some(tags(&[("publish:status", "withdrawn")])))
        .build();

    let (outcome, [reads, deprecations, modify, copies]) = copy_event_in_its_region(untagged).await;

    let image = &outcome.images[0];
    assert_eq!(
        (image.action, image.status),
        (Action::Rejected, Some(Status::Rejected))
    );
    assert!(
        image.reasons[0]
            .contains("its source us-east-1/ami-0a1b2c3d4e5f60001 is not tagged publish=public"),
        "{:?}",
        image.reasons
    );
    assert_eq!((reads, deprecations, modify, copies), (1, 0, 0, 0));
}

#[tokio::test]
async fn the_source_stack_publishes_available_copies_and_names_one_blocked_by_bpa() {
    // Every copy available and private; image block public access is on in
    // eu-west-1. The source's own stack finishes the job in every region.
    let blocked = "eu-west-1";
    let regions: Vec<(Region, Rule, Rule, Rule, Rule)> = TARGETS
        .iter()
        .map(|t| {
            let copy = existing_copy(t, ImageState::Available, false);
            let state = if *t == blocked {
                "block-new-sharing"
            } else {
                "unblocked"
            };
            (
                target_region(t, Some(copy), copy_ok(t)),
                bpa(state, ManagedBy::Account),
                mock!(Client::enable_image_deprecation)
                    .then_output(|| EnableImageDeprecationOutput::builder().build()),
                mock!(Client::modify_image_attribute)
                    .then_output(|| ModifyImageAttributeOutput::builder().build()),
                create_tags_ok(),
            )
        })
        .collect();
    let describe = describe_owned(Some(public_source_copying()));
    let tag = create_tags_expecting(&[("publish:status", "copying")]);
    let mut clients = vec![(HOME, client(&[&describe, &tag]))];
    for (r, bpa, deprecate, modify, tag) in &regions {
        clients.push((
            r.name,
            client(&[&r.find, &r.copy, bpa, deprecate, modify, tag]),
        ));
    }
    let p = publisher(copy_config(), clients);

    let outcome = run(&p, direct()).await.unwrap();

    for (r, _, deprecate, modify, tag) in &regions {
        let expected = if r.name == blocked {
            (0, 0, 1)
        } else {
            (1, 1, 1)
        };
        assert_eq!(
            (
                r.name,
                deprecate.num_calls(),
                modify.num_calls(),
                tag.num_calls()
            ),
            (r.name, expected.0, expected.1, expected.2),
            "deprecation, ModifyImageAttribute, status tags on the copy"
        );
        assert_eq!(r.copy.num_calls(), 0);
    }
    let image = &outcome.images[0];
    assert_eq!(image.status, Some(Status::Copying));
    let eu = image
        .copies
        .iter()
        .find(|c| c.region.as_str() == blocked)
        .unwrap();
    assert_eq!(
        (eu.action, eu.status, eu.public),
        (Some(Action::Rejected), Some(Status::Rejected), false)
    );
    assert!(
        eu.reasons[0].contains("image block public access"),
        "{:?}",
        eu.reasons
    );
    let published = image
        .copies
        .iter()
        .filter(|c| c.action == Some(Action::Published))
        .count();
    assert_eq!(published, TARGETS.len() - 1);
}

#[tokio::test]
async fn another_accounts_public_ami_tagged_here_is_never_copied() {
    let foreign = eligible().owner_id("137112412989").public(true).build();
    let targets: Vec<Region> = TARGETS
        .iter()
        .map(|t| target_region(t, None, copy_ok(t)))
        .collect();
    let describe_shared = describe_any(Some(foreign.clone()));
    let (modify, tag) = (
        make_public_ok(),
        create_tags_expecting(&[("publish:status", "rejected")]),
    );
    let describe_self = describe_owned(None);
    let mut clients = vec![(
        HOME,
        client(&[&describe_self, &describe_shared, &modify, &tag]),
    )];
    for t in &targets {
        clients.push((t.name, client(&[&t.find, &t.copy])));
    }
    let p = publisher(copy_config(), clients);

    let outcome = run(&p, direct()).await.unwrap();

    assert_eq!(outcome.images[0].action, Action::Rejected);
    let copy_calls: usize = targets
        .iter()
        .map(|t| t.find.num_calls() + t.copy.num_calls())
        .sum();
    assert_eq!((copy_calls, modify.num_calls()), (0, 0));
}

#[tokio::test]
async fn no_copy_is_started_when_the_source_could_not_be_made_public() {
    let targets: Vec<Region> = TARGETS
        .iter()
        .map(|t| target_region(t, None, copy_ok(t)))
        .collect();
    let bpa = bpa("unblocked", ManagedBy::Account);
    // BPA turned on between the read and the write: refused, for good.
    let modify = mock!(Client::modify_image_attribute).then_error(|| {
        ModifyImageAttributeError::generic(
            ErrorMetadata::builder()
                .code("OperationNotPermitted")
                .message("block public access")
                .build(),
        )
    });
    let tag = create_tags_expecting(&[("publish:status", "rejected")]);
    let p = source_publisher(eligible().build(), &targets, &[&bpa, &modify, &tag]);

    let outcome = run(&p, direct()).await.unwrap();

    let image = &outcome.images[0];
    assert_eq!(image.status, Some(Status::Rejected));
    assert!(
        image.reasons[0].contains("OperationNotPermitted"),
        "{:?}",
        image.reasons
    );
    let copy_calls: usize = targets.iter().map(|t| t.copy.num_calls()).sum();
    assert_eq!(copy_calls, 0);
}

/// The copies in eu-west-1 as a run sees them, the rest public; `copy`
/// answers CopyImage there. Returns the outcome and, at home, the number of
/// generation tags written.
async fn heal(eu_copies: Vec<Image>, eu_rules: &[&Rule]) -> (Outcome, usize) {
    let mut regions = Vec::new();
    for t in TARGETS {
        let found = if t == "eu-west-1" {
            eu_copies.clone()
        } else {
            vec![existing_copy(t, ImageState::Available, true)]
        };
        let find = mock!(Client::describe_images)
            .match_requests(|r| {
                r.filters()
                    .iter()
                    .any(|f| f.name() == Some("tag:publish:source"))
            })
            .then_output(move || {
                DescribeImagesOutput::builder()
                    .set_images(Some(found.clone()))
                    .build()
            });
        regions.push((t, find));
    }
    let describe = describe_owned(Some(public_source_copying()));
    let generation = mock!(Client::create_tags)
        .match_requests(|r| {
            r.tags()
                .iter()
                .any(|t| t.key() == Some("publish:generation"))
        })
        .then_output(|| CreateTagsOutput::builder().build());
    let tag = create_tags_ok();
    let mut clients = vec![(HOME, client(&[&describe, &generation, &tag]))];
    for (t, find) in &regions {
        let mut rules: Vec<&Rule> = vec![find];
        if *t == "eu-west-1" {
            rules.extend_from_slice(eu_rules);
        }
        clients.push((t, client(&rules)));
    }
    let p = publisher(copy_config(), clients);
    let outcome = run(&p, direct()).await.unwrap();
    (outcome, generation.num_calls())
}

/// CopyImage in eu-west-1 answering `id` for the token of `generation`.
fn copy_answers(generation: u32, id: &'static str) -> Rule {
    mock!(Client::copy_image)
        .match_requests(move |r| {
            r.client_token() == Some(&format!("{HOME}/{SOURCE_ID}/eu-west-1/{generation}"))
        })
        .then_output(move || CopyImageOutput::builder().image_id(id).build())
}

const NEW_COPY: &str = "ami-0c0c0c0c0c0c09999";

/// DescribeImages of the new copy by id: pending.
fn new_copy_pending() -> Rule {
    mock!(Client::describe_images)
        .match_requests(|r| r.image_ids() == [NEW_COPY])
        .then_output(|| {
            let copy = existing_copy_with_id(NEW_COPY, "eu-west-1", ImageState::Pending, false);
            DescribeImagesOutput::builder().images(copy).build()
        })
}

#[tokio::test]
async fn a_failed_copy_is_replaced_under_a_new_token_and_only_once() {
    let failed = existing_copy("eu-west-1", ImageState::Failed, false);
    // EC2 answers the old token with the failed copy, a new one with a new copy.
    let (old, new, seen) = (
        copy_answers(0, "ami-0c0c0c0c0c0c00001"),
        copy_answers(1, NEW_COPY),
        new_copy_pending(),
    );

    let (outcome, generations) = heal(vec![failed], &[&old, &new, &seen]).await;

    let eu = outcome.images[0]
        .copies
        .iter()
        .find(|c| c.region.as_str() == "eu-west-1")
        .unwrap();
    assert_eq!(
        (eu.started, eu.image_id.as_ref().map(|i| i.as_str())),
        (true, Some(NEW_COPY))
    );
    assert_eq!((old.num_calls(), new.num_calls(), generations), (1, 1, 1));
    assert_eq!(outcome.images[0].status, Some(Status::Copying));
}

#[tokio::test]
async fn a_copy_gone_from_ec2_is_replaced_when_ec2_answers_its_token_with_it() {
    // No copy listed; the old token's copy was deregistered (an empty answer by id).
    let gone = mock!(Client::describe_images)
        .match_requests(|r| r.image_ids() == ["ami-0c0c0c0c0c0c00001"])
        .then_output(|| DescribeImagesOutput::builder().build());
    let (old, new, seen) = (
        copy_answers(0, "ami-0c0c0c0c0c0c00001"),
        copy_answers(1, NEW_COPY),
        new_copy_pending(),
    );

    let (outcome, generations) = heal(vec![], &[&gone, &old, &new, &seen]).await;

    let eu = outcome.images[0]
        .copies
        .iter()
        .find(|c| c.region.as_str() == "eu-west-1")
        .unwrap();
    assert_eq!(eu.image_id.as_ref().map(|i| i.as_str()), Some(NEW_COPY));
    assert_eq!((gone.num_calls(), new.num_calls(), generations), (1, 1, 1));
}

#[tokio::test]
async fn a_token_conflict_is_resolved_with_a_new_token_not_an_error() {
    let conflict = mock!(Client::copy_image)
        .match_requests(|r| r.client_token() == Some(&format!("{HOME}/{SOURCE_ID}/eu-west-1/0")))
        .then_error(|| {
            CopyImageError::generic(
                ErrorMetadata::builder()
                    .code("IdempotentParameterMismatch")
                    .message("The request uses the same client token as a previous, but non-identical request.")
                    .build(),
            )
        });
    let (new, seen) = (copy_answers(1, NEW_COPY), new_copy_pending());

    let (outcome, generations) = heal(vec![], &[&conflict, &new, &seen]).await;

    let eu = outcome.images[0]
        .copies
        .iter()
        .find(|c| c.region.as_str() == "eu-west-1")
        .unwrap();
    assert_eq!((eu.started, eu.error.as_deref()), (true, None));
    assert_eq!(
        (conflict.num_calls(), new.num_calls(), generations),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn a_live_copy_found_by_its_tag_is_kept_and_nothing_is_copied() {
    let live = existing_copy("eu-west-1", ImageState::Pending, false);
    let failed = existing_copy_with_id(
        "ami-0d0d0d0d0d0d00001",
        "eu-west-1",
        ImageState::Failed,
        false,
    );
    let any_copy = mock!(Client::copy_image)
        .then_output(|| CopyImageOutput::builder().image_id(NEW_COPY).build());

    let (outcome, generations) = heal(vec![failed, live], &[&any_copy]).await;

    let eu = outcome.images[0]
        .copies
        .iter()
        .find(|c| c.region.as_str() == "eu-west-1")
        .unwrap();
    assert_eq!(
        eu.image_id.as_ref().map(|i| i.as_str()),
        Some(copy_id("eu-west-1").as_str())
    );
    assert_eq!(
        (any_copy.num_calls(), generations),
        (0, 0),
        "exactly one live copy per region"
    );
}

/// A first publish with copies to every target; `eu_rules` answer first in
/// eu-west-1. Returns the outcome and the CopyImage calls there.
async fn first_publish_with(source: Image, eu_rules: &[&Rule]) -> (Outcome, usize) {
    let eu_copy = copy_ok("eu-west-1");
    let mut targets = Vec::new();
    for t in TARGETS {
        let copy = if t == "eu-west-1" {
            eu_copy.clone()
        } else {
            copy_ok(t)
        };
        targets.push(target_region(t, None, copy));
    }
    let describe = describe_owned(Some(source));
    let (bpa, modify, tag) = (
        bpa("unblocked", ManagedBy::Account),
        make_public_ok(),
        create_tags_ok(),
    );
    let mut clients = vec![(HOME, client(&[&describe, &bpa, &modify, &tag]))];
    for t in &targets {
        let mut rules: Vec<&Rule> = if t.name == "eu-west-1" {
            eu_rules.to_vec()
        } else {
            vec![]
        };
        rules.extend([&t.find, &t.copy]);
        clients.push((t.name, client(&rules)));
    }
    let p = publisher(copy_config(), clients);
    let outcome = run(&p, direct()).await.unwrap();
    let eu_calls = targets
        .iter()
        .find(|t| t.name == "eu-west-1")
        .unwrap()
        .copy
        .num_calls();
    (outcome, eu_calls)
}

#[tokio::test]
async fn no_copy_into_a_region_whose_ebs_encryption_by_default_would_encrypt_it() {
    let on = encrypts_by_default(true);

    let (outcome, eu_calls) = first_publish_with(eligible().build(), &[&on]).await;

    let eu = eu_copy(&outcome);
    assert_eq!(
        (eu.action, eu_calls, eu.started),
        (Some(Action::Rejected), 0, false)
    );
    assert!(
        eu.reasons[0].contains("EBS encryption by default is on in eu-west-1"),
        "{:?}",
        eu.reasons
    );
    let started = outcome.images[0]
        .copies
        .iter()
        .filter(|c| c.started)
        .count();
    assert_eq!(started, TARGETS.len() - 1, "the other regions copy");
}

#[tokio::test]
async fn no_copy_into_a_region_without_public_ami_headroom() {
    let full = count_public(5);

    let (outcome, eu_calls) = first_publish_with(eligible().build(), &[&full]).await;

    let eu = eu_copy(&outcome);
    assert_eq!((eu.action, eu_calls), (Some(Action::Rejected), 0));
    assert!(
        eu.reasons[0].contains("quota in eu-west-1 is reached: 5 public of 5"),
        "{:?}",
        eu.reasons
    );
    let eu_quota = outcome
        .quotas
        .iter()
        .find(|q| q.region.as_str() == "eu-west-1")
        .unwrap();
    assert_eq!(eu_quota.headroom, 0);
}

#[tokio::test]
async fn an_instance_store_ami_is_published_in_its_region_but_not_copied() {
    let instance_store = eligible()
        .root_device_type(aws_sdk_ec2::types::DeviceType::InstanceStore)
        .set_block_device_mappings(None)
        .build();

    let (outcome, eu_calls) = first_publish_with(instance_store, &[]).await;

    let image = &outcome.images[0];
    assert_eq!(image.action, Action::Published);
    assert_eq!(eu_calls, 0);
    for copy in &image.copies {
        assert_eq!(copy.action, Some(Action::Rejected), "{copy:?}");
        assert!(
            copy.reasons[0].contains("instance-store AMIs are not copied"),
            "{:?}",
            copy.reasons
        );
    }
}
