// Deliberately not freestanding (built with -fexceptions -frtti): the target
// check must reject operator new, throw and dynamic_cast.
struct Base {
    virtual ~Base() = default;
};
struct Derived : Base {};

int* fieldlink_negative_new();
void fieldlink_negative_throw(int code);
Derived* fieldlink_negative_cast(Base* base);

int* fieldlink_negative_new() { return new int(1); }
void fieldlink_negative_throw(int code) {
    if (code != 0) {
        throw code;
    }
}
Derived* fieldlink_negative_cast(Base* base) { return dynamic_cast<Derived*>(base); }
