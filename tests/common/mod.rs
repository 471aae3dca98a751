//! Test harness for integration tests: starts the local EC2 emulator
//! (`tests/emulator/server.py`) on a free port, drives its control API, and
//! builds a `Publisher` whose clients talk to it over HTTP. A missing or
//! broken emulator fails the test that needs it, loudly.

#![allow(dead_code)] // each test binary uses a part of the harness

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ami_publisher::clients::Clients;
use ami_publisher::config::Config;
use ami_publisher::publisher::Publisher;
use serde_json::{Value, json};

/// The name of the ledger table the emulator creates in every region, as
/// template.yaml defines it (tests/emulator/rules/ledger.py).
pub const LEDGER_TABLE: &str = "ami-publisher-ledger";

/// The configuration every test's function starts from: its region, the
/// ledger as the template deploys it, and the content check off: the AMIs
/// most tests seed have no disk image behind them, and the check's own
/// tests (tests/against_emulator/content.rs) turn it on over real images.
/// A test's own variables override.
pub fn defaults(home_region: &str) -> [(&str, &str); 3] {
    [
        ("AWS_REGION", home_region),
        ("LEDGER_TABLE", LEDGER_TABLE),
        ("CONTENT_CHECK", "off"),
    ]
}

pub struct Emulator {
    child: Child,
    pub url: String,
    host_port: String,
}

impl Emulator {
    /// Starts a fresh emulator; panics with the reason when it can't.
    pub fn start() -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let python = std::env::var_os("EMULATOR_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".venv/bin/python"));
        assert!(
            python.exists(),
            "the EC2 emulator needs the project's Python environment: {} is missing (run `make test`, or `make venv` first, or set EMULATOR_PYTHON)",
            python.display()
        );
        let mut child = Command::new(&python)
            .arg(root.join("tests/emulator/server.py"))
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "could not start the EC2 emulator with {}: {e}",
                    python.display()
                )
            });
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reading the emulator's first line");
        let Some(url) = line.trim().strip_prefix("EMULATOR_READY ") else {
            let status = child.try_wait().ok().flatten();
            let _ = child.kill();
            panic!(
                "the EC2 emulator did not start (exit status {status:?}, first line {line:?}); see its stderr above"
            );
        };
        let url = url.to_owned();
        let host_port = url.trim_start_matches("http://").to_owned();
        Self {
            child,
            url,
            host_port,
        }
    }

    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut stream = TcpStream::connect(&self.host_port).expect("connect to emulator");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("set timeout");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.host_port,
            body.len()
        )
        .expect("write request");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("read response");
        let response = String::from_utf8(response).expect("utf-8 response");
        let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
        let status_ok = head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200");
        assert!(status_ok, "{method} {path} failed: {head}\n{body}");
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_owned()
        };
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"))
    }

    pub fn post(&self, path: &str, body: Value) -> Value {
        self.request("POST", path, Some(&body))
    }

    pub fn get(&self, path: &str) -> Value {
        self.request("GET", path, None)
    }

    /// Seeds an AMI; `spec` is the control API's body (`region` required).
    pub fn seed(&self, spec: Value) -> String {
        self.post("/_emulator/images", spec)["image_id"]
            .as_str()
            .expect("image_id")
            .to_owned()
    }

    pub fn images(&self, region: &str) -> Vec<Value> {
        self.get(&format!("/_emulator/images?region={region}"))["images"]
            .as_array()
            .expect("images")
            .clone()
    }

    pub fn image(&self, region: &str, id: &str) -> Value {
        self.images(region)
            .into_iter()
            .find(|i| i["image_id"] == id)
            .unwrap_or_else(|| panic!("no image {id} in {region}"))
    }

    pub fn set_bpa(&self, region: &str, state: &str, managed_by: &str) {
        self.post(
            "/_emulator/bpa",
            json!({"region": region, "state": state, "managed_by": managed_by}),
        );
    }

    /// EC2 actions called since the last clear, in order.
    pub fn calls(&self) -> Vec<(String, String)> {
        self.get("/_emulator/calls")["calls"]
            .as_array()
            .expect("calls")
            .iter()
            .map(|c| {
                (
                    c["action"].as_str().unwrap_or_default().to_owned(),
                    c["region"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// The call log as the emulator keeps it (image ids, launch permission
    /// changes).
    pub fn call_log(&self) -> Vec<Value> {
        self.get("/_emulator/calls")["calls"]
            .as_array()
            .expect("calls")
            .clone()
    }

    pub fn clear_calls(&self) {
        self.post("/_emulator/calls/clear", json!({}));
    }

    /// The next call of `action` waits in the emulator until [`release`]
    /// (two runs interleaved at a named call).
    ///
    /// [`release`]: Emulator::release
    pub fn hold(&self, action: &str) {
        self.post("/_emulator/holds", json!({"action": action, "count": 1}));
    }

    /// Waits (at most 30 s, then panics) until a call of `action` is held.
    pub async fn until_held(&self, action: &str) {
        for _ in 0..600 {
            let holds = self.get("/_emulator/holds");
            let waiting = holds["holds"]
                .as_array()
                .expect("holds")
                .iter()
                .any(|h| h["action"] == action && h["waiting"].as_u64() > Some(0));
            if waiting {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no {action} call was held within 30 s");
    }

    /// Lets the held call of `action` go on.
    pub fn release(&self, action: &str) {
        self.post("/_emulator/holds/release", json!({"action": action}));
    }

    /// Uploads the disk image at `path` as a new snapshot in `region`
    /// through the EBS direct APIs, as coldsnap does (StartSnapshot,
    /// PutSnapshotBlock per block with its checksum, CompleteSnapshot:
    /// tests/emulator/ebs_upload.py, with boto3); returns the snapshot id.
    pub fn upload_image(&self, region: &str, path: &std::path::Path) -> String {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let python = std::env::var_os("EMULATOR_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".venv/bin/python"));
        let script = "import sys, boto3\n\
            sys.path.insert(0, sys.argv[1])\n\
            from ebs_upload import upload_disk_image\n\
            c = boto3.client('ebs', endpoint_url=sys.argv[2], region_name=sys.argv[3], aws_access_key_id='test', aws_secret_access_key='test')\n\
            print(upload_disk_image(c, sys.argv[4]))\n";
        let out = Command::new(&python)
            .args(["-c", script])
            .arg(root.join("tests/emulator"))
            .args([&self.url, region])
            .arg(path)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| {
                panic!("could not run the uploader with {}: {e}", python.display())
            });
        assert!(
            out.status.success(),
            "uploading {} failed ({}): see stderr above",
            path.display(),
            out.status
        );
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(id.starts_with("snap-"), "the uploader printed {id:?}");
        id
    }

    /// The function's clients (EC2, EBS, ...), as src/clients.rs builds
    /// them, talking to this emulator.
    pub async fn clients(&self, region: &str) -> Clients {
        Clients::from_sdk_config(&self.sdk_config(region).await)
    }

    /// A Publisher deployed in `home_region` with extra configuration,
    /// whose EC2 clients call this emulator.
    pub async fn publisher(&self, home_region: &str, vars: &[(&str, &str)]) -> Publisher {
        let config = Config::from_vars(&[&defaults(home_region), vars].concat())
            .expect("valid test configuration");
        let clients = Clients::from_sdk_config(&self.sdk_config(home_region).await);
        Publisher::new(config, clients)
    }

    /// The same, with other limits on every call.
    pub async fn publisher_with_limits(
        &self,
        home_region: &str,
        vars: &[(&str, &str)],
        limits: ami_publisher::clients::CallLimits,
    ) -> Publisher {
        let config = Config::from_vars(&[&defaults(home_region), vars].concat())
            .expect("valid test configuration");
        let clients =
            Clients::from_sdk_config(&self.sdk_config(home_region).await).with_limits(limits);
        Publisher::new(config, clients)
    }

    /// Answers one EC2 and one DynamoDB request in `region`: moto loads a
    /// service on its first request (most of a second), which a test that
    /// measures time against a deadline must not count.
    pub async fn warm_up(&self, region: &str) {
        let sdk = self.sdk_config(region).await;
        aws_sdk_ec2::Client::new(&sdk)
            .describe_images()
            .owners("self")
            .send()
            .await
            .expect("DescribeImages");
        aws_sdk_dynamodb::Client::new(&sdk)
            .list_tables()
            .send()
            .await
            .expect("ListTables");
    }

    /// An EC2 client of the account in `region`: the AMIs' owner acting by
    /// hand (tagging, untagging, making private).
    pub async fn owner(&self, region: &str) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.sdk_config(region).await)
    }

    /// The SDK configuration every client of the tests uses: this emulator,
    /// dummy credentials, `region`.
    pub async fn sdk(&self, region: &str) -> aws_config::SdkConfig {
        self.sdk_config(region).await
    }

    async fn sdk_config(&self, region: &str) -> aws_config::SdkConfig {
        // The function's own HTTPS client (plain HTTP to the emulator).
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(ami_publisher::http_client::shared())
            .endpoint_url(&self.url)
            .region(aws_config::Region::new(region.to_owned()))
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                "test", "test", None, None, "dummy",
            ))
            .load()
            .await
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The sample events, as AWS sends them, with the image, region and state swapped in.
pub fn ami_state_event(image_id: &str, region: &str, state: &str) -> Value {
    json!({"version":"0","id":"example-9f07-51db-246b-d8b8441bcdf0","detail-type":"EC2 AMI State Change","source":"aws.ec2","account":"123456789012","time":"2026-11-28T00:00:00Z","region":region,"resources":[format!("arn:aws:ec2:{region}::image/{image_id}")],"detail":{"RequestId":"example-9dcc-40a6-aa77-7ce457d5442b","ImageId":image_id,"State":state,"ErrorMessage":""}})
}

pub fn tag_change_event(image_id: &str, region: &str, changed: &[&str]) -> Value {
    json!({"version":"0","id":"bddcf1d6-0251-35a1-aab0-adc1fb47c11c","detail-type":"Tag Change on Resource","source":"aws.tag","account":"123456789012","time":"2026-11-28T00:00:00Z","region":region,"resources":[format!("arn:aws:ec2:{region}::image/{image_id}")],"detail":{"changed-tag-keys":changed,"tags":{"publish":"public"},"service":"ec2","resource-type":"image","version":3}})
}

pub fn sweep_event(region: &str) -> Value {
    json!({"version":"0","id":"53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"2026-11-28T00:00:00Z","region":region,"resources":[format!("arn:aws:events:{region}:123456789012:rule/ami-publisher-sweep")],"detail":{}})
}

/// The disk images tests/images/build.py builds (once; then kept), like
/// real AMIs' volumes: `DISK_IMAGES_DIR`, else the target directory's
/// `disk-images`. A failed build fails the test that needs them.
pub fn disk_images() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::var_os("DISK_IMAGES_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let target = std::env::var_os("CARGO_TARGET_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| root.join("target"));
                target.join("disk-images")
            });
        let status = Command::new("python3")
            .arg(root.join("tests/images/build.py"))
            .arg(&dir)
            .status()
            .expect("python3 runs tests/images/build.py (the disk images' builder)");
        assert!(
            status.success(),
            "tests/images/build.py failed ({status}): see its message above; `make images-tools` installs the tools"
        );
        dir.join("v3")
    })
    .clone()
}
