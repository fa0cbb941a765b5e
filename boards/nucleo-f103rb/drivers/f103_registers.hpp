// STM32F103RB as data: the peripheral addresses, register offsets and bits the
// drivers use, and nothing else. Written from RM0008 (STM32F101/2/3/5/7
// reference manual, rev 21), PM0075 (STM32F10xxx flash programming manual) and
// the STM32F103x8/B datasheet (DS5319). Section numbers are RM0008's unless
// marked. Drivers take a base address, so host tests pass a register block in
// RAM instead (tests/nucleo_f103rb/).
#pragma once

#include <cstdint>

namespace fieldlink::boards::nucleo_f103rb {

// Memory map (§3.3, Figure 11 of the datasheet).
inline constexpr std::uintptr_t kFlashMemoryBase = 0x0800'0000;
inline constexpr std::uint32_t kFlashPageSize = 1024;         // medium density: 1 KiB pages (§3.3.3)
inline constexpr std::uint32_t kFlashPages = 128;             // 128 KiB on the RB
inline constexpr std::uintptr_t kUniqueIdBase = 0x1FFF'F7E8;  // 96-bit unique ID (§30.2)

inline constexpr std::uintptr_t kGpioABase = 0x4001'0800;
inline constexpr std::uintptr_t kAdc1Base = 0x4001'2400;
inline constexpr std::uintptr_t kUsart2Base = 0x4000'4400;
inline constexpr std::uintptr_t kRccBase = 0x4002'1000;
inline constexpr std::uintptr_t kFlashInterfaceBase = 0x4002'2000;

// Vector table position of USART2's interrupt (§10.1.2, Table 63).
inline constexpr unsigned kUsart2Irq = 38;

namespace rcc {  // §7.3
inline constexpr std::uintptr_t kCr = 0x00;
inline constexpr std::uintptr_t kCfgr = 0x04;
inline constexpr std::uintptr_t kApb2enr = 0x18;
inline constexpr std::uintptr_t kApb1enr = 0x1C;

inline constexpr std::uint32_t kCrHsion = 1u << 0;
inline constexpr std::uint32_t kCrHsirdy = 1u << 1;
inline constexpr std::uint32_t kCrPllon = 1u << 24;
inline constexpr std::uint32_t kCrPllrdy = 1u << 25;

inline constexpr std::uint32_t kCfgrSwMask = 3u << 0;
inline constexpr std::uint32_t kCfgrSwPll = 2u << 0;
inline constexpr std::uint32_t kCfgrSwsMask = 3u << 2;
inline constexpr std::uint32_t kCfgrSwsPll = 2u << 2;
inline constexpr std::uint32_t kCfgrHpreMask = 0xFu << 4;
inline constexpr std::uint32_t kCfgrPpre1Mask = 7u << 8;
inline constexpr std::uint32_t kCfgrPpre1Div2 = 4u << 8;
inline constexpr std::uint32_t kCfgrPpre2Mask = 7u << 11;
inline constexpr std::uint32_t kCfgrAdcpreMask = 3u << 14;
inline constexpr std::uint32_t kCfgrAdcpreDiv6 = 2u << 14;
inline constexpr std::uint32_t kCfgrPllsrcHse = 1u << 16;  // clear: HSI / 2 feeds the PLL
inline constexpr std::uint32_t kCfgrPllxtpre = 1u << 17;
inline constexpr std::uint32_t kCfgrPllmulMask = 0xFu << 18;
inline constexpr std::uint32_t kCfgrPllmulX16 = 14u << 18;  // 0b1110: x16

inline constexpr std::uint32_t kApb2IopaEn = 1u << 2;
inline constexpr std::uint32_t kApb2Adc1En = 1u << 9;
inline constexpr std::uint32_t kApb1Usart2En = 1u << 17;
}  // namespace rcc

namespace flash {  // §3.3.3 (ACR); PM0075 §3 (the rest)
inline constexpr std::uintptr_t kAcr = 0x00;
inline constexpr std::uintptr_t kKeyr = 0x04;
inline constexpr std::uintptr_t kSr = 0x0C;
inline constexpr std::uintptr_t kCr = 0x10;
inline constexpr std::uintptr_t kAr = 0x14;

inline constexpr std::uint32_t kAcrLatencyMask = 7u << 0;
inline constexpr std::uint32_t kAcrLatency2 = 2u << 0;  // 48 MHz < SYSCLK <= 72 MHz
inline constexpr std::uint32_t kAcrPrftbe = 1u << 4;

inline constexpr std::uint32_t kKey1 = 0x4567'0123;
inline constexpr std::uint32_t kKey2 = 0xCDEF'89AB;

inline constexpr std::uint32_t kSrBsy = 1u << 0;
inline constexpr std::uint32_t kSrPgerr = 1u << 2;
inline constexpr std::uint32_t kSrWrprterr = 1u << 4;
inline constexpr std::uint32_t kSrEop = 1u << 5;

inline constexpr std::uint32_t kCrPg = 1u << 0;
inline constexpr std::uint32_t kCrPer = 1u << 1;
inline constexpr std::uint32_t kCrStrt = 1u << 6;
inline constexpr std::uint32_t kCrLock = 1u << 7;
}  // namespace flash

namespace usart {  // §27.6
inline constexpr std::uintptr_t kSr = 0x00;
inline constexpr std::uintptr_t kDr = 0x04;
inline constexpr std::uintptr_t kBrr = 0x08;
inline constexpr std::uintptr_t kCr1 = 0x0C;
inline constexpr std::uintptr_t kCr2 = 0x10;
inline constexpr std::uintptr_t kCr3 = 0x14;

inline constexpr std::uint32_t kSrPe = 1u << 0;
inline constexpr std::uint32_t kSrFe = 1u << 1;
inline constexpr std::uint32_t kSrNe = 1u << 2;
inline constexpr std::uint32_t kSrOre = 1u << 3;
inline constexpr std::uint32_t kSrRxne = 1u << 5;
inline constexpr std::uint32_t kSrTc = 1u << 6;
inline constexpr std::uint32_t kSrTxe = 1u << 7;

inline constexpr std::uint32_t kCr1Re = 1u << 2;
inline constexpr std::uint32_t kCr1Te = 1u << 3;
inline constexpr std::uint32_t kCr1Rxneie = 1u << 5;
inline constexpr std::uint32_t kCr1Txeie = 1u << 7;
inline constexpr std::uint32_t kCr1Ue = 1u << 13;
}  // namespace usart

namespace adc {  // §11.12
inline constexpr std::uintptr_t kSr = 0x00;
inline constexpr std::uintptr_t kCr1 = 0x04;
inline constexpr std::uintptr_t kCr2 = 0x08;
inline constexpr std::uintptr_t kSmpr1 = 0x0C;
inline constexpr std::uintptr_t kSqr1 = 0x2C;
inline constexpr std::uintptr_t kSqr3 = 0x34;
inline constexpr std::uintptr_t kDr = 0x4C;

inline constexpr std::uint32_t kSrEoc = 1u << 1;

inline constexpr std::uint32_t kCr2Adon = 1u << 0;
inline constexpr std::uint32_t kCr2Cal = 1u << 2;
inline constexpr std::uint32_t kCr2Rstcal = 1u << 3;
inline constexpr std::uint32_t kCr2ExtselSwstart = 7u << 17;
inline constexpr std::uint32_t kCr2Exttrig = 1u << 20;
inline constexpr std::uint32_t kCr2Swstart = 1u << 22;
inline constexpr std::uint32_t kCr2Tsvrefe = 1u << 23;

inline constexpr unsigned kTemperatureChannel = 16;
inline constexpr unsigned kVrefintChannel = 17;
// SMPR1 holds channels 10..17, three bits each; 0b111 = 239.5 cycles.
inline constexpr unsigned smpr1_shift(unsigned channel) { return (channel - 10) * 3; }
inline constexpr std::uint32_t kSmp239Cycles = 7u;
}  // namespace adc

namespace gpio {  // §9.2
inline constexpr std::uintptr_t kCrl = 0x00;
inline constexpr std::uintptr_t kOdr = 0x0C;
inline constexpr std::uintptr_t kBsrr = 0x10;
// Four bits per pin in CRL (pins 0..7): MODE[1:0] then CNF[1:0] (§9.1, Table 20).
inline constexpr std::uint32_t kAltPushPull2MHz = 0b1010;
inline constexpr std::uint32_t kInputPullUpDown = 0b1000;
inline constexpr std::uint32_t kOutputPushPull2MHz = 0b0010;
}  // namespace gpio

}  // namespace fieldlink::boards::nucleo_f103rb
