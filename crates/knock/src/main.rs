fn main() {
    println!("knock: not implemented yet");
}
