//! The Rust runtime gives the same numbers as Python onnxruntime (and so as
//! PyTorch, which the export checks against onnxruntime) on the fixture
//! models and on the shipped model. References are written by
//! onnx/idfcr_train/export/fixtures.py and onnx/idfcr_train/export/pixel_cr.py.

mod common;

use idfcr::config::Device;
use idfcr::models::pixel_cr::Model;

fn read_f32(path: &std::path::Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn check(name: &str) {
    let dir = common::repo().join("testdata/models");
    let refj: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("{name}.ref.json"))).unwrap(),
    )
    .unwrap();
    let shape: Vec<usize> = refj["input_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    // Fixtures sit beside their references; shipped models say where they are.
    let model_path = match refj["model"].as_str() {
        Some(rel) => dir.join(rel),
        None => common::fixture_model(name),
    };
    let model = Model::load(&model_path, Device::Cpu, 1, 1, None).unwrap();
    assert_eq!(model.contract.bands, shape[1], "{name}");
    assert_eq!(
        model.contract.halo_px as u64,
        refj["halo_px"].as_u64().unwrap(),
        "{name}"
    );
    let input = ndarray::Array3::from_shape_vec(
        (shape[1], shape[2], shape[3]),
        read_f32(&dir.join(format!("{name}.input.bin"))),
    )
    .unwrap();
    let out = model.run(0, input).unwrap();
    let clear: Vec<f32> = out.clear.iter().copied().collect();
    let attention: Vec<f32> = out.attention.unwrap().iter().copied().collect();
    for (what, got) in [("clear", clear), ("attention", attention)] {
        let want = read_f32(&dir.join(format!("{name}.{what}.bin")));
        assert_eq!(got.len(), want.len(), "{name} {what}");
        let max = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max < 1e-4, "{name} {what}: max |rust - python| = {max}");
    }
}

#[test]
fn fixtures_match_python_onnxruntime() {
    for name in [
        "tiny_conv",
        "tiny_conv4",
        "tiny_conv6",
        "tiny_conv2",
        "s2_double_10m",
        "tiny_swin",
        "tiny_swin_half",
    ] {
        check(name);
    }
}

#[test]
fn shipped_model_matches_python_onnxruntime() {
    for name in [
        "pixel_cr_rgb",
        "pixel_cr_rice1",
        "s2_10m",
        "s2_20m",
        "s2_60m",
        "s2_60m_l2a",
    ] {
        check(name);
    }
}

/// The three IND graphs (encoder, decoder, fused ControlNet + UNet
/// denoiser) give the same numbers from Rust as from Python onnxruntime,
/// and their contracts load.
#[test]
fn ind_graphs_match_python_onnxruntime() {
    use idfcr::models::ind::IndGraph;
    let dir = common::repo().join("testdata/models");
    let refj: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("ind_tiny.ref.json")).unwrap())
            .unwrap();
    for kind in ["encoder", "decoder", "denoiser"] {
        let path = dir.join(format!("ind_tiny_{kind}.onnx"));
        let g = IndGraph::load(&path, &format!("ind_{kind}"), Device::Cpu, 1, 1, None).unwrap();
        assert_eq!(
            (
                g.contract.bands,
                g.contract.latent_channels,
                g.contract.factor
            ),
            (3, 4, 2)
        );
        let r = &refj[kind];
        let inputs: Vec<(&str, Vec<usize>, Vec<f32>)> = g
            .contract
            .inputs
            .iter()
            .map(|name| {
                let shape: Vec<usize> = r["inputs"][name.as_str()]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as usize)
                    .collect();
                let data = read_f32(&dir.join(format!("ind_tiny_{kind}.{name}.bin")));
                (name.as_str(), shape, data)
            })
            .collect();
        let (got, shape) = g.run(0, inputs).unwrap();
        let want_shape: Vec<usize> = r["output"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(shape, want_shape, "{kind}");
        let want = read_f32(&dir.join(format!("ind_tiny_{kind}.out.bin")));
        let max = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max < 1e-4, "{kind}: max |rust - python| = {max}");
    }
    // A graph of the wrong kind is refused by name.
    let e = IndGraph::load(
        &dir.join("ind_tiny_encoder.onnx"),
        "ind_decoder",
        Device::Cpu,
        1,
        1,
        None,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("is a ind_encoder, not a ind_decoder"), "{e}");
}

/// `idfcr s2` on an L1C band stack computes the cloud probability the
/// measurement that chose its calibration computed
/// (`python -m idfcr_train.export.s2cloudless --parity-fixture`): 6 x 6 block
/// means, the s2cloudless graph, the calibration the bundled 10 m model
/// carries, bilinear sampling.
#[test]
fn s2cloudless_map_matches_the_measurement() {
    let dir = common::repo().join("testdata/models");
    let refj: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("s2cloudless.ref.json")).unwrap())
            .unwrap();
    let n = refj["size"].as_u64().unwrap() as usize;
    let dn: Vec<u16> = std::fs::read(dir.join("s2cloudless.dn.bin"))
        .unwrap()
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let want = read_f32(&dir.join("s2cloudless.p10m.bin"));
    assert_eq!((dn.len(), want.len()), (13 * n * n, n * n));
    let tmp = tempfile::tempdir().unwrap();
    let stack = tmp.path().join("stack.tif");
    common::write_tiff::<u16>(&stack, n, n, 13, None, |b, y, x| dn[(b * n + y) * n + x]);
    let out = tmp.path().join("out");
    let o = common::idfcr(
        tmp.path(),
        &[
            "s2",
            stack.to_str().unwrap(),
            out.to_str().unwrap(),
            "--s2-bands",
            "B1,B2,B3,B4,B5,B6,B7,B8,B8A,B9,B10,B11,B12",
            "--groups",
            "10m",
            "--mask-name",
            "{product}_p_{group}.tif",
            "-q",
            "--device",
            "cpu",
        ],
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    let (p, w, h) = common::read_all(&out.join("stack_p_10m.tif"));
    assert_eq!((w, h), (n, n));
    let worst = p[0]
        .iter()
        .zip(&want)
        .map(|(a, b)| (*a - *b as f64).abs())
        .fold(0.0, f64::max);
    assert!(
        worst < 1e-5,
        "runtime p differs from the measurement's by {worst}"
    );
    // The fixture has both clear ground (p exactly 0) and cloud (p = 1).
    assert!(want.contains(&0.0) && want.contains(&1.0));
    for (a, b) in p[0].iter().zip(&want) {
        assert_eq!(*a == 0.0, *b == 0.0, "p = 0 must agree exactly");
    }
}
