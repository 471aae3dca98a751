//! Take-down: untagged or held AMIs and their copies made private; only
//! what the function made public; only the protection it set.

use super::*;

/// ModifyImageAttribute removing the group `all` (and adding nothing) from `id`.
fn make_private_ok(id: String) -> Rule {
    mock!(Client::modify_image_attribute)
        .match_requests(move |r| {
            r.image_id() == Some(id.as_str())
                && r.launch_permission().is_some_and(|lp| {
                    lp.add().is_empty()
                        && lp.remove().len() == 1
                        && lp.remove()[0].group() == Some(&PermissionGroup::All)
                })
        })
        .then_output(|| ModifyImageAttributeOutput::builder().build())
}

/// Takes down a public source and its public copies in two regions with
/// `payload`; every client answers only its exact calls, in order
/// (Sequential), so any other call (BPA, CopyImage, deprecation, a second
/// tag write) fails the test. The source ends with `status`, each copy
/// private with `copy_status`.
async fn take_down(source: Image, payload: serde_json::Value, status: Status, copy_status: Status) {
    let targets = ["us-west-2", "eu-west-1"];
    let home = [
        describe_owned(Some(source)),
        make_private_ok(SOURCE_ID.to_owned()),
        create_tags_on(SOURCE_ID.to_owned(), status.as_str()),
    ];
    let copies: Vec<[Rule; 3]> = targets
        .iter()
        .map(|t| {
            [
                find_copy(Some(existing_copy(t, ImageState::Available, true))),
                make_private_ok(copy_id(t)),
                create_tags_on(copy_id(t), copy_status.as_str()),
            ]
        })
        .collect();
    let mut clients = vec![(HOME, mock_client!(aws_sdk_ec2, RuleMode::Sequential, &home))];
    for (t, rules) in targets.iter().zip(&copies) {
        clients.push((t, mock_client!(aws_sdk_ec2, RuleMode::Sequential, rules)));
    }
    let p = publisher(
        config(&[("TARGET_REGIONS", "us-west-2,eu-west-1")]),
        clients,
    );

    let outcome = run(&p, payload).await.unwrap();

    for rule in home.iter().chain(copies.iter().flatten()) {
        assert_eq!(rule.num_calls(), 1, "each expected call exactly once");
    }
    let image = &outcome.images[0];
    assert_eq!(
        (image.action, image.status),
        (Action::Withdrawn, Some(status))
    );
    assert!(
        image
            .copies
            .iter()
            .all(|c| !c.public && c.status == Some(copy_status)),
        "{:?}",
        image.copies
    );
}

#[tokio::test]
async fn untagging_makes_the_source_and_its_copies_in_two_regions_private() {
    let untagged = eligible()
        .public(true)
        .deprecation_time(PUBLIC_DEPRECATION)
        .set_tags(Some(tags(&[
            ("Name", "demo"),
            ("publish:status", "public"),
        ])))
        .build();

    take_down(untagged, direct(), Status::Withdrawn, Status::Withdrawn).await;
}

#[tokio::test]
async fn an_unpublish_request_holds_a_tagged_source_and_its_copies() {
    let tagged = public_source_copying();
    let request = json!({"image_id": SOURCE_ID, "action": "unpublish"});

    // The copies follow their source: withdrawn while it is held, published
    // again with it once its owner releases it.
    take_down(tagged, request, Status::Held, Status::Withdrawn).await;
}

#[tokio::test]
async fn an_ami_the_function_did_not_make_public_is_not_taken_down() {
    // Public, untagged, no status tag: never the function's.
    let foreign_public = eligible()
        .public(true)
        .set_tags(Some(tags(&[("Name", "demo")])))
        .build();

    let (outcome, (bpa, modify, tag)) = run_owned(foreign_public, "unblocked").await;

    assert_eq!(outcome.images[0].action, Action::Skipped);
    assert_eq!((bpa, modify, tag), (0, 0, 0));
}

#[tokio::test]
async fn a_take_down_removes_only_the_protection_the_function_set() {
    let untagged = |marker: &str| {
        eligible()
            .public(true)
            .deregistration_protection("enabled-without-cooldown")
            .set_tags(Some(tags(&[
                ("publish:status", "public"),
                ("publish:protected", marker),
            ])))
            .build()
    };
    for (marker, expected) in [("true", 1), ("false", 0)] {
        let describe = describe_owned(Some(untagged(marker)));
        let private = make_private_ok(SOURCE_ID.to_owned());
        let unprotect = mock!(Client::disable_image_deregistration_protection)
            .match_requests(|r| r.image_id() == Some(SOURCE_ID))
            .then_output(|| {
                aws_sdk_ec2::operation::disable_image_deregistration_protection::DisableImageDeregistrationProtectionOutput::builder().build()
            });
        let tag = create_tags_ok();
        let p = publisher(
            config(&[("PROTECT_PUBLIC", "true")]),
            vec![(HOME, client(&[&describe, &private, &unprotect, &tag]))],
        );

        let outcome = run(&p, direct()).await.unwrap();

        assert_eq!(outcome.images[0].action, Action::Withdrawn);
        assert_eq!(
            (private.num_calls(), unprotect.num_calls()),
            (1, expected),
            "marker {marker}"
        );
    }
}

fn unprotect_ok() -> Rule {
    mock!(Client::disable_image_deregistration_protection)
        .match_requests(|r| r.image_id() == Some(SOURCE_ID))
        .then_output(|| {
            aws_sdk_ec2::operation::disable_image_deregistration_protection::DisableImageDeregistrationProtectionOutput::builder().build()
        })
}

#[tokio::test]
async fn a_copy_a_take_down_could_not_make_private_leaves_the_source_in_error() {
    let untagged = eligible()
        .public(true)
        .deprecation_time(PUBLIC_DEPRECATION)
        .set_tags(Some(tags(&[
            ("Name", "demo"),
            ("publish:status", "public"),
        ])))
        .build();
    let home = [
        describe_owned(Some(untagged)),
        make_private_ok(SOURCE_ID.to_owned()),
        create_tags_on(SOURCE_ID.to_owned(), "error"),
    ];
    let west = [
        find_copy(Some(existing_copy(
            "us-west-2",
            ImageState::Available,
            true,
        ))),
        make_private_ok(copy_id("us-west-2")),
        create_tags_on(copy_id("us-west-2"), "withdrawn"),
    ];
    let eu = [
        find_copy(Some(existing_copy(
            "eu-west-1",
            ImageState::Available,
            true,
        ))),
        mock!(Client::modify_image_attribute)
            .then_error(|| ModifyImageAttributeError::generic(unauthorized())),
        create_tags_on(copy_id("eu-west-1"), "error"),
    ];
    let p = publisher(
        config(&[("TARGET_REGIONS", "us-west-2,eu-west-1")]),
        vec![
            (HOME, mock_client!(aws_sdk_ec2, RuleMode::Sequential, &home)),
            (
                "us-west-2",
                mock_client!(aws_sdk_ec2, RuleMode::Sequential, &west),
            ),
            (
                "eu-west-1",
                mock_client!(aws_sdk_ec2, RuleMode::Sequential, &eu),
            ),
        ],
    );

    let outcome = run(&p, direct()).await.expect("a refusal is an outcome");

    for rule in home.iter().chain(&west).chain(&eu) {
        assert_eq!(rule.num_calls(), 1, "each expected call exactly once");
    }
    let image = &outcome.images[0];
    // Not `withdrawn`: a sweep takes up a source in error again, and with it
    // the copy still public in eu-west-1.
    assert_eq!(image.status, Some(Status::Error), "{image:?}");
    let eu_copy = image
        .copies
        .iter()
        .find(|c| c.region.as_str() == "eu-west-1");
    assert!(eu_copy.is_some_and(|c| c.public), "{:?}", image.copies);
}

#[tokio::test]
async fn a_withdrawn_ami_still_protected_by_the_function_gets_its_protection_off() {
    // Made private by an earlier take-down whose unprotect call failed.
    let withdrawn = eligible()
        .deregistration_protection("enabled-without-cooldown")
        .set_tags(Some(tags(&[
            ("publish:status", "withdrawn"),
            ("publish:protected", "true"),
        ])))
        .build();
    let describe = describe_owned(Some(withdrawn));
    let unprotect = unprotect_ok();
    let tag = create_tags_expecting(&[("publish:protected", "false")]);
    let rules = [describe, unprotect, tag];
    let p = publisher(
        config(&[("PROTECT_PUBLIC", "true")]),
        vec![(
            HOME,
            mock_client!(aws_sdk_ec2, RuleMode::Sequential, &rules),
        )],
    );

    let outcome = run(&p, direct()).await.unwrap();

    for rule in &rules {
        assert_eq!(rule.num_calls(), 1, "{outcome:?}");
    }
}
