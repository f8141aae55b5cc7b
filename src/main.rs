fn main() {
    // Before any thread exists: ONNX Runtime's builds from Microsoft (1.29
    // and later) keep a device id and usage events under ~/.cache unless
    // this is set when the library initialises (see README, Privacy).
    if std::env::var_os("ORT_DISABLE_TELEMETRY").is_none() {
        std::env::set_var("ORT_DISABLE_TELEMETRY", "1");
    }
    let code = idfcr::run_cli(std::env::args_os());
    // A raised signal skips Rust's buffers: a batch's --summary on stdout
    // must still arrive whole.
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // An interrupted run ends by its signal (see `interrupt`).
    idfcr::interrupt::die(code);
}
