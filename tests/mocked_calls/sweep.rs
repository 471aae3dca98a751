//! The sweep: one read of a region's state, its deadline, a target region
//! that can't be listed.

use super::*;

#[tokio::test]
async fn sweep_asks_bpa_once_and_skips_amis_already_public_with_status() {
    let done = eligible()
        .image_id("ami-0d0d0d0d0d0d00001")
        .public(true)
        .set_tags(Some(tags(&[
            ("publish", "public"),
            ("publish:status", "public"),
            ("publish:reason", "public in us-east-1"),
        ])))
        .build();
    let todo: Vec<Image> = (2..5)
        .map(|n| {
            eligible()
                .image_id(format!("ami-0d0d0d0d0d0d0000{n}"))
                .build()
        })
        .collect();
    let mut listed = todo.clone();
    listed.push(done);
    let list = mock!(Client::describe_images)
        .match_requests(|r| {
            r.owners() == ["self"]
                && r.filters().iter().any(|f| {
                    f.name() == Some("tag-key") && f.values() == ["publish", "publish:status"]
                })
        })
        .then_output(move || {
            DescribeImagesOutput::builder()
                .set_images(Some(listed.clone()))
                .build()
        });
    let bpa = bpa("unblocked", ManagedBy::Account);
    let modify = mock!(Client::modify_image_attribute)
        .then_output(|| ModifyImageAttributeOutput::builder().build());
    let tag = create_tags_ok();
    let p = publisher(
        config(&[]),
        vec![(HOME, client(&[&list, &bpa, &modify, &tag]))],
    );
    let sweep = sweep_event(HOME);

    let outcome = run(&p, sweep).await.unwrap();

    assert_eq!(outcome.images.len(), 3);
    assert!(outcome.images.iter().all(|i| i.action == Action::Published));
    assert_eq!(
        (list.num_calls(), bpa.num_calls(), modify.num_calls()),
        (1, 1, 3)
    );
}

#[tokio::test]
async fn sweep_near_its_deadline_leaves_the_amis_to_the_next_sweep() {
    let todo: Vec<Image> = (2..5)
        .map(|n| {
            eligible()
                .image_id(format!("ami-0d0d0d0d0d0d0000{n}"))
                .build()
        })
        .collect();
    let list = mock!(Client::describe_images).then_output(move || {
        DescribeImagesOutput::builder()
            .set_images(Some(todo.clone()))
            .build()
    });
    let modify = make_public_ok();
    let p = publisher(config(&[]), vec![(HOME, client(&[&list, &modify]))]);
    let sweep = sweep_event(HOME);
    let deadline = std::time::SystemTime::now() + Duration::from_secs(5);

    let outcome = p.handle_until(&sweep, Some(deadline)).await.unwrap();

    assert_eq!((outcome.images.len(), outcome.deferred), (0, 3));
    assert_eq!(modify.num_calls(), 0);
}

#[tokio::test]
async fn a_target_region_that_cannot_be_listed_does_not_stop_the_sweep() {
    // us-west-2 refuses every call: for good (an opt-in region not enabled)
    // or for now. The home AMI is published and eu-west-1 gets its copy
    // either way; only a failure a retry may fix fails the invocation.
    for (code, retried) in [("OptInRequired", false), ("ServiceUnavailable", true)] {
        let list = mock!(Client::describe_images)
            .match_requests(|r| r.filters().iter().any(|f| f.name() == Some("tag-key")))
            .then_output(|| {
                DescribeImagesOutput::builder()
                    .images(eligible().build())
                    .build()
            });
        let (bpa, modify, tag) = (
            bpa("unblocked", ManagedBy::Account),
            make_public_ok(),
            create_tags_ok(),
        );
        let refusing = mock!(Client::describe_images).then_error(move || {
            aws_sdk_ec2::operation::describe_images::DescribeImagesError::generic(
                ErrorMetadata::builder()
                    .code(code)
                    .message("injected")
                    .build(),
            )
        });
        let no_copies =
            mock!(Client::describe_images).then_output(|| DescribeImagesOutput::builder().build());
        let eu_copy = copy_ok("eu-west-1");
        let p = publisher(
            config(&[("TARGET_REGIONS", "us-west-2,eu-west-1")]),
            vec![
                (HOME, client(&[&list, &bpa, &modify, &tag])),
                ("us-west-2", client(&[&refusing])),
                ("eu-west-1", client(&[&eu_copy, &no_copies])),
            ],
        );

        let result = run(&p, sweep_event(HOME)).await;

        assert_eq!(modify.num_calls(), 1, "{code}: the home AMI is published");
        assert_eq!(eu_copy.num_calls(), 1, "{code}: eu-west-1 gets its copy");
        match result {
            Ok(outcome) if !retried => {
                assert_eq!(outcome.unlisted_regions.len(), 1, "{outcome:?}");
                assert_eq!(outcome.unlisted_regions[0].region.as_str(), "us-west-2");
            }
            Err(Error::Incomplete { failures }) if retried => {
                assert!(
                    failures.iter().any(|f| f.contains("us-west-2")),
                    "{failures:?}"
                );
            }
            other => panic!("{code}: {other:?}"),
        }
    }
}
