#include "f103_rcc.hpp"

#include "f103_registers.hpp"
#include "hw_access.hpp"

namespace fieldlink::boards::nucleo_f103rb {
namespace {

bool wait_set(std::uintptr_t address, std::uint32_t mask, std::uint32_t value, std::uint32_t limit) noexcept {
    for (std::uint32_t i = 0; i < limit; ++i) {
        if ((hw::read32(address) & mask) == value) return true;
    }
    return false;
}

constexpr unsigned kLedPin = 5;

}  // namespace

ClockTree configure_clocks(std::uintptr_t rcc_base, std::uintptr_t fpec, std::uint32_t poll_limit) noexcept {
    using namespace rcc;
    ClockTree tree;
    hw::write32(rcc_base + kCr, hw::read32(rcc_base + kCr) | kCrHsion);
    if (!wait_set(rcc_base + kCr, kCrHsirdy, kCrHsirdy, poll_limit)) return tree;
    // Wait states before the clock goes up, never after (§3.3.3).
    hw::write32(fpec + flash::kAcr,
                (hw::read32(fpec + flash::kAcr) & ~flash::kAcrLatencyMask) | flash::kAcrLatency2 | flash::kAcrPrftbe);
    // PLL settings change only while it is off (§7.3.2): HSI/2 x 16, AHB /1, APB1 /2, APB2 /1, ADC /6.
    std::uint32_t cfgr = hw::read32(rcc_base + kCfgr);
    cfgr &= ~(kCfgrHpreMask | kCfgrPpre1Mask | kCfgrPpre2Mask | kCfgrAdcpreMask | kCfgrPllsrcHse | kCfgrPllxtpre |
              kCfgrPllmulMask);
    cfgr |= kCfgrPpre1Div2 | kCfgrAdcpreDiv6 | kCfgrPllmulX16;
    hw::write32(rcc_base + kCfgr, cfgr);
    hw::write32(rcc_base + kCr, hw::read32(rcc_base + kCr) | kCrPllon);
    if (!wait_set(rcc_base + kCr, kCrPllrdy, kCrPllrdy, poll_limit)) {
        hw::write32(rcc_base + kCr, hw::read32(rcc_base + kCr) & ~kCrPllon);
        // Keep the prescalers' effect in mind: APB1 /2 and ADC /6 of 8 MHz.
        tree.pclk1_hz = 4'000'000;
        tree.adc_hz = 8'000'000 / 6;
        return tree;
    }
    hw::write32(rcc_base + kCfgr, (hw::read32(rcc_base + kCfgr) & ~kCfgrSwMask) | kCfgrSwPll);
    if (!wait_set(rcc_base + kCfgr, kCfgrSwsMask, kCfgrSwsPll, poll_limit)) {
        tree.pclk1_hz = 4'000'000;
        tree.adc_hz = 8'000'000 / 6;
        return tree;
    }
    tree.sysclk_hz = kSysclkHz;
    tree.pclk1_hz = kSysclkHz / 2;
    tree.pclk2_hz = kSysclkHz;
    tree.adc_hz = kSysclkHz / 6;
    tree.pll = true;
    return tree;
}

void enable_peripheral_clocks(std::uintptr_t rcc_base) noexcept {
    using namespace rcc;
    hw::write32(rcc_base + kApb2enr, hw::read32(rcc_base + kApb2enr) | kApb2IopaEn | kApb2Adc1En);
    hw::write32(rcc_base + kApb1enr, hw::read32(rcc_base + kApb1enr) | kApb1Usart2En);
}

void configure_pins(std::uintptr_t gpioa) noexcept {
    using namespace gpio;
    std::uint32_t crl = hw::read32(gpioa + kCrl);
    crl &= ~((0xFu << (2 * 4)) | (0xFu << (3 * 4)) | (0xFu << (kLedPin * 4)));
    crl |= (kAltPushPull2MHz << (2 * 4)) | (kInputPullUpDown << (3 * 4)) | (kOutputPushPull2MHz << (kLedPin * 4));
    hw::write32(gpioa + kBsrr, (1u << 3) | (1u << (kLedPin + 16)));  // PA3 pull-up, LED off
    hw::write32(gpioa + kCrl, crl);
}

void set_led(std::uintptr_t gpioa, bool on) noexcept {
    hw::write32(gpioa + gpio::kBsrr, on ? (1u << kLedPin) : (1u << (kLedPin + 16)));
}

}  // namespace fieldlink::boards::nucleo_f103rb
