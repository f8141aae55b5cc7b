//! `idfcr SUBCOMMAND --describe-json`: the subcommand's parameters as JSON,
//! read from the clap definitions in `args` so the two cannot disagree.

use crate::cli::args::Cli;

/// Options that only mean something next to another one (by clap id): a
/// front end must leave them out, their defaults too, unless that one is
/// given, or the run is refused (`--steps belongs to the diffusion stage`).
/// clap's `requires` has no public getter, and the diffusion options are
/// checked in `ProcessingArgs::refine_options`: the test below runs each.
const REQUIRES: &[(&str, &str)] = &[
    ("cloud_values", "cloud_mask"),
    ("cloud_mask_grow", "cloud_mask"),
    ("cloud_mask_feather", "cloud_mask"),
    ("ind_model", "refine"),
    ("steps", "refine"),
    ("sampler", "refine"),
    ("seed", "refine"),
    ("refine_tile", "refine"),
];

/// A machine-readable description of a subcommand's parameters, for front
/// ends (a QGIS Processing provider, for one) to build their dialogs from.
/// Printed by `idfcr SUBCOMMAND --describe-json`.
pub fn describe(sub: &str) -> Option<serde_json::Value> {
    use clap::CommandFactory;
    let mut root = Cli::command();
    // Built, so that global options (--log-format) reach each subcommand
    // as they do on the command line.
    root.build();
    let cmd = root.find_subcommand(sub)?;
    let params: Vec<serde_json::Value> = cmd
        .get_arguments()
        // Hidden options are refused by their subcommand (`s2 -b`): a
        // dialog must not offer them.
        .filter(|a| !a.is_hide_set())
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
        .map(|a| {
            let kind = if a.is_positional() {
                "positional"
            } else if a.get_action().takes_values() {
                "value"
            } else {
                "flag"
            };
            serde_json::json!({
                "name": a.get_id().as_str(),
                "kind": kind,
                "flag": a.get_long().map(|l| format!("--{l}")),
                "short": a.get_short().map(|c| format!("-{c}")),
                "required": a.is_required_set(),
                "repeatable": matches!(a.get_action(), clap::ArgAction::Append),
                "values": a.get_value_names().map(|v| v.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
                "default": a.get_default_values().first().map(|v| v.to_string_lossy().to_string())
                    .or_else(|| a.get_help().and_then(|h| stated_default(&h.to_string()))),
                "requires": REQUIRES.iter().find(|(o, _)| *o == a.get_id().as_str()).map(|(_, r)| *r),
                "choices": a.get_possible_values().iter().map(|v| v.get_name().to_string()).collect::<Vec<_>>(),
                "help": a.get_help().map(|h| h.to_string()).unwrap_or_default(),
            })
        })
        .collect();
    let mut d = serde_json::json!({
        "tool": "idfcr",
        "version": env!("CARGO_PKG_VERSION"),
        "command": sub,
        "about": cmd.get_about().map(|h| h.to_string()).unwrap_or_default(),
        "exit_codes": {"0": "success", "1": "failure", "2": "usage error", "129": "interrupted by SIGHUP", "130": "interrupted by Ctrl-C (SIGINT)", "143": "interrupted by SIGTERM", "note": "an interrupted run removes its partial files, then ends by the signal it got: a shell shows 128 + the signal; a program that starts idfcr directly sees it killed by that signal (Python: returncode -2 or -15)"},
        "parameters": params,
    });
    // Only the commands that run a model report progress (not `models`).
    if cmd.get_arguments().any(|a| a.get_id() == "progress") {
        d["progress"] = "--progress gdal prints 0...10...20...100 - done. on stdout".into();
    }
    Some(d)
}

/// The default a help text states as `[default: X]`: options that must stay
/// unset unless given (the diffusion stage's, refused without `--refine`)
/// carry their default there rather than in clap. A default in words ("the
/// bundled ind_rgb") is no value a front end could pass: none.
fn stated_default(help: &str) -> Option<String> {
    let start = help.rfind("[default: ")? + "[default: ".len();
    let end = start + help[start..].find(']')?;
    let d = &help[start..end];
    (!d.contains(' ')).then(|| d.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_choices_reach_front_ends() {
        let d = describe("remove").unwrap();
        let param = |name: &str| {
            d["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("{name}"))
        };
        // (parameter, default, choices)
        let table: &[(&str, &str, &[&str])] = &[
            ("format", "GTiff", &["GTiff", "COG"]),
            ("steps", "50", &[]),
            ("sampler", "ddpm", &["ddpm", "ddim"]),
            ("seed", "0", &[]),
            ("refine_tile", "1024", &[]),
        ];
        for (name, default, choices) in table {
            let p = param(name);
            assert_eq!(p["default"], *default, "{name}");
            assert_eq!(p["choices"], serde_json::json!(choices), "{name}");
        }
        // The help texts state these defaults in words; the code takes them
        // from constants: the two must agree.
        use crate::config::{DEFAULT_REFINE_TILE_PX, DEFAULT_SEED, DEFAULT_STEPS};
        assert_eq!(param("steps")["default"], DEFAULT_STEPS.to_string());
        assert_eq!(param("seed")["default"], DEFAULT_SEED.to_string());
        assert_eq!(
            param("refine_tile")["default"],
            DEFAULT_REFINE_TILE_PX.to_string()
        );
        assert_eq!(stated_default("no default here"), None);
        assert_eq!(stated_default("x [default: the bundled ind_rgb]"), None);
        assert!(param("ind_model")["default"].is_null());
        // --ot has no default (the input's type) but a fixed list.
        let ot = param("out_type");
        assert!(ot["default"].is_null());
        assert_eq!(
            ot["choices"],
            serde_json::json!(["Byte", "UInt16", "Int16", "UInt32", "Int32", "Float32", "Float64"])
        );
    }

    /// Each option `REQUIRES` lists is refused without its parent, given at
    /// its stated default (what a dialog would pass), and accepted with it.
    #[test]
    fn options_that_need_another_say_so() {
        use clap::Parser;
        let d = describe("remove").unwrap();
        for &(opt, parent) in REQUIRES {
            let p = d["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == opt)
                .unwrap_or_else(|| panic!("{opt}"))
                .clone();
            assert_eq!(p["requires"], parent, "{opt}");
            let flag = p["flag"].as_str().unwrap().to_string();
            let value = p["default"].as_str().unwrap_or("1").to_string();
            let parent_args: Vec<String> = match parent {
                "refine" => vec!["--refine".into()],
                _ => vec!["--cloud-mask".into(), "m.tif".into()],
            };
            let config = |with_parent: bool| {
                let mut args: Vec<String> = ["idfcr", "remove", "in.tif", "out.tif", &flag, &value]
                    .map(String::from)
                    .to_vec();
                if with_parent {
                    args.extend(parent_args.iter().cloned());
                }
                let cli = Cli::try_parse_from(&args).map_err(|e| e.to_string())?;
                match cli.command {
                    crate::cli::args::Command::Remove(r) => {
                        r.into_config().map(|_| ()).map_err(|e| e.to_string())
                    }
                    _ => unreachable!(),
                }
            };
            assert!(config(false).is_err(), "{flag} {value} alone was accepted");
            let with = config(true);
            assert!(
                with.as_ref().map_or_else(|e| !e.contains(&flag), |()| true),
                "{flag} {value} with its parent: {with:?}"
            );
        }
    }
}
