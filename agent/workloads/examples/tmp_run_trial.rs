fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args[1] == "--expand" {
        let file = sweep_spec::SweepFile::read(std::path::Path::new(&args[2])).unwrap();
        for t in sweep_spec::expand(&file).unwrap() {
            let p = format!("{}/{}.json", args[3], t.id);
            std::fs::write(&p, serde_json::to_string(&t).unwrap()).unwrap();
        }
        return;
    }
    std::process::exit(sweep_workloads::run_trial_main(std::path::Path::new(&args[1])));
}
