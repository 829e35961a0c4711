//! The CNI plugin binary; runtimes find it by the config's `"type":
//! "netfwd"`, so it is installed as `netfwd` on their plugin path.

fn main() -> std::process::ExitCode {
    netfwd::cni::main()
}
