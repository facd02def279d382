fn main() {
    println!("knockd: not implemented yet");
}
