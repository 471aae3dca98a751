//! Rotation's calls: the family listing, a retirement finished later, the
//! AMI a run is for never retired.

use super::*;

#[tokio::test]
async fn a_family_listing_keeps_only_the_exact_value_not_what_ec2s_wildcards_match() {
    // EC2 reads `*` in a filter value as a wildcard: `tag:family=web*` also
    // answers `web-2`'s AMIs, which rotation must never count or retire.
    let image = |id: &str, family: &str| {
        eligible()
            .image_id(id)
            .set_tags(Some(tags(&[("family", family)])))
            .build()
    };
    let listing = mock!(Client::describe_images).then_output(move || {
        DescribeImagesOutput::builder()
            .images(image("ami-0000000000000000a", "web*"))
            .images(image("ami-0000000000000000b", "web-2"))
            .build()
    });
    let ec2 =
        ami_publisher::ec2::Client::new(client(&[&listing]), ami_publisher::pace::Pace::new(false));

    let family =
        ami_publisher::ec2::list_owned_images_tagged(&ec2, &region(HOME), "family", "web*")
            .await
            .unwrap();

    let ids: Vec<&str> = family.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["ami-0000000000000000a"]);
}

#[tokio::test]
async fn a_retirement_that_failed_is_finished_by_the_next_run() {
    const OLD: &str = "ami-0a0a0a0a0a0a0a0a1";
    let family = |extra: &[(&str, &str)]| {
        let mut pairs = vec![("publish", "public"), ("family", "base")];
        pairs.extend_from_slice(extra);
        tags(&pairs)
    };
    let old = eligible()
        .image_id(OLD)
        .public(true)
        .creation_date("2026-10-01T00:00:00.000Z")
        .set_tags(Some(family(&[("publish:status", "public")])))
        .build();
    let listing = |new: Image| {
        let old = old.clone();
        mock!(Client::describe_images)
            .match_requests(|r| r.filters().iter().any(|f| f.name() == Some("tag:family")))
            .then_output(move || {
                DescribeImagesOutput::builder()
                    .images(old.clone())
                    .images(new.clone())
                    .build()
            })
    };
    let retire_old = |ok: bool| {
        let rule = mock!(Client::modify_image_attribute).match_requests(|r| {
            r.image_id() == Some(OLD)
                && r.launch_permission()
                    .is_some_and(|lp| lp.remove().len() == 1)
        });
        if ok {
            rule.then_output(|| ModifyImageAttributeOutput::builder().build())
        } else {
            rule.then_error(|| {
                ModifyImageAttributeError::generic(
                    ErrorMetadata::builder()
                        .code("ServiceUnavailable")
                        .message("injected")
                        .build(),
                )
            })
        }
    };
    let vars = [("KEEP_PUBLIC_PER_FAMILY", "1")];

    // First run: the new AMI is made public; retiring the old one fails.
    let new = eligible().set_tags(Some(family(&[]))).build();
    let (describe, list, bpa, modify) = (
        describe_owned(Some(new.clone())),
        listing(new),
        bpa("unblocked", ManagedBy::Account),
        make_public_ok(),
    );
    let (failing, tag) = (retire_old(false), create_tags_on(SOURCE_ID.into(), "error"));
    let p = publisher(
        config(&vars),
        vec![(
            HOME,
            client(&[&describe, &list, &bpa, &modify, &failing, &tag]),
        )],
    );
    let first = run(&p, direct()).await;
    assert!(matches!(first, Err(Error::Incomplete { .. })), "{first:?}");
    assert_eq!((modify.num_calls(), tag.num_calls()), (1, 1));

    // The retry: the new AMI is public, in `error`; the retirement is done.
    let public_in_error = eligible()
        .public(true)
        .deprecation_time(PUBLIC_DEPRECATION)
        .set_tags(Some(family(&[("publish:status", "error")])))
        .build();
    let (describe, list) = (
        describe_owned(Some(public_in_error.clone())),
        listing(public_in_error),
    );
    let (retiring, old_tag, new_tag) = (
        retire_old(true),
        create_tags_on(OLD.into(), "retired"),
        create_tags_on(SOURCE_ID.into(), "public"),
    );
    let p = publisher(
        config(&vars),
        vec![(
            HOME,
            client(&[&describe, &list, &retiring, &old_tag, &new_tag]),
        )],
    );
    let second = run(&p, direct()).await.unwrap();

    assert_eq!(
        (
            retiring.num_calls(),
            old_tag.num_calls(),
            new_tag.num_calls()
        ),
        (1, 1, 1),
        "{second:?}"
    );
}

#[tokio::test]
async fn finishing_a_rotation_never_retires_the_ami_it_runs_for() {
    // X is public in `error` and, since KEEP was lowered, older than the
    // one release its family keeps: the run for X must not make X private
    // and go on as if it were public (a newer release's run retires it).
    const NEWER: &str = "ami-0a0a0a0a0a0a0a0a2";
    let family_tags = |status: &str| {
        tags(&[
            ("publish", "public"),
            ("family", "base"),
            ("publish:status", status),
        ])
    };
    let x = eligible()
        .public(true)
        .deprecation_time(PUBLIC_DEPRECATION)
        .set_tags(Some(family_tags("error")))
        .build();
    let newer = eligible()
        .image_id(NEWER)
        .public(true)
        .creation_date("2026-11-20T00:00:00.000Z")
        .set_tags(Some(family_tags("public")))
        .build();
    let members = [x.clone(), newer];
    let list = mock!(Client::describe_images)
        .match_requests(|r| r.filters().iter().any(|f| f.name() == Some("tag:family")))
        .then_output(move || {
            DescribeImagesOutput::builder()
                .set_images(Some(members.to_vec()))
                .build()
        });
    let any_modify = mock!(Client::modify_image_attribute)
        .then_output(|| ModifyImageAttributeOutput::builder().build());
    let (describe, tag) = (describe_owned(Some(x)), create_tags_ok());
    let p = publisher(
        config(&[("KEEP_PUBLIC_PER_FAMILY", "1")]),
        vec![(HOME, client(&[&describe, &list, &any_modify, &tag]))],
    );

    let outcome = run(&p, direct()).await.unwrap();

    assert_eq!(list.num_calls(), 1, "the family is read: {outcome:?}");
    assert_eq!(any_modify.num_calls(), 0, "{outcome:?}");
}
