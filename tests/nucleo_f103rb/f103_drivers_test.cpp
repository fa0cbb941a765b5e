// The board's drivers (the same sources as in the image) against register
// models: exact register sequences and error codes.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "emulated/f103_models.hpp"
#include "f103_adc.hpp"
#include "f103_flash.hpp"
#include "f103_registers.hpp"
#include "f103_usart.hpp"
#include "fieldlink/spool/flash_spool.hpp"
#include "internal_sensors.hpp"
#include "seed_random.hpp"

namespace {

using namespace fieldlink;
using namespace fieldlink::boards::nucleo_f103rb;
using test::f103::Access;

const char* flash_name(std::uintptr_t o) {
    switch (o) {
        case flash::kKeyr: return "KEYR";
        case flash::kSr: return "SR";
        case flash::kCr: return "CR";
        case flash::kAr: return "AR";
        default: return "?";
    }
}

F103Flash make_flash(test::f103::FlashControllerModel& m) {
    F103Flash::Config c;
    c.controller = m.registers();
    c.first_page = m.memory();
    c.page_count = test::f103::FlashControllerModel::kPages;
    c.busy_poll_limit = 50;
    return F103Flash(c);
}

TEST(F103Flash, EraseRunsTheExactSequenceAndLocksAgain) {
    test::f103::FlashControllerModel m;
    std::vector<Access> log;
    m.attach(&log);
    F103Flash flash = make_flash(m);
    m.bytes()[1024 + 7] = 0x00;
    ASSERT_EQ(flash.erase(1), hal::FlashStatus::Ok);
    EXPECT_EQ(m.bytes()[1024 + 7], 0xFF);
    const std::uint32_t page = static_cast<std::uint32_t>(m.memory() + 1024);
    const std::string expected =
        "R32 CR 0x80\nW32 KEYR 0x45670123\nW32 KEYR 0xcdef89ab\nR32 CR 0x0\nR32 SR 0x0\n"
        "R32 CR 0x0\nW32 CR 0x2\nW32 AR 0x" +
        [&] {
            char b[16];
            snprintf(b, sizeof b, "%x", page);
            return std::string(b);
        }() +
        "\nR32 CR 0x2\nW32 CR 0x42\nR32 SR 0x1\nR32 SR 0x1\nR32 SR 0x1\nR32 SR 0x20\nW32 SR 0x20\n"
        "R32 CR 0x2\nW32 CR 0x0\nR32 CR 0x0\nW32 CR 0x80\n";
    EXPECT_EQ(test::f103::describe(log, flash_name), expected);
    EXPECT_TRUE(m.errors.empty()) << m.errors.front();
    EXPECT_EQ(m.cr(), flash::kCrLock);
    EXPECT_EQ(m.sr(), 0u);
}

TEST(F103Flash, ProgramsHalfWordsWaitingForBusyEachTime) {
    test::f103::FlashControllerModel m;
    std::vector<Access> log;
    m.attach(&log);
    F103Flash flash = make_flash(m);
    const std::uint8_t data[4] = {0x11, 0x22, 0x33, 0x44};
    ASSERT_EQ(flash.program(8, data, 4), hal::FlashStatus::Ok);
    EXPECT_EQ(std::memcmp(m.bytes() + 8, data, 4), 0);
    EXPECT_EQ(m.programs, 2u);
    EXPECT_EQ(flash.geometry().write_size, 2u);
    EXPECT_TRUE(m.errors.empty()) << m.errors.front();
    EXPECT_EQ(m.cr(), flash::kCrLock);  // PG cleared, locked
    unsigned busy_reads = 0;
    for (const Access& a : log) busy_reads += a.kind == Access::Kind::Read && a.offset == flash::kSr && (a.value & 1);
    EXPECT_EQ(busy_reads, 2 * m.busy_polls);
}

TEST(F103Flash, RefusesANonErasedHalfWordWithoutTouchingTheController) {
    test::f103::FlashControllerModel m;
    std::vector<Access> log;
    m.attach(&log);
    F103Flash flash = make_flash(m);
    m.bytes()[10] = 0xFE;
    const std::uint8_t data[4] = {0, 0, 0, 0};
    EXPECT_EQ(flash.program(8, data, 4), hal::FlashStatus::NotErased);
    EXPECT_TRUE(log.empty());
    EXPECT_EQ(m.bytes()[8], 0xFF);
    EXPECT_EQ(flash.program(1, data, 2), hal::FlashStatus::Misaligned);
    EXPECT_EQ(flash.program(4096, data, 2), hal::FlashStatus::OutOfRange);
}

TEST(F103Flash, AFailedProgramIsAnIoErrorWithFlagsClearedAndLocked) {
    test::f103::FlashControllerModel m;
    std::vector<Access> log;
    m.attach(&log);
    F103Flash flash = make_flash(m);
    m.fail_program_at = 1;
    const std::uint8_t data[6] = {1, 2, 3, 4, 5, 6};
    EXPECT_EQ(flash.program(0, data, 6), hal::FlashStatus::IoError);
    EXPECT_EQ(flash.last_fault(), F103Flash::Fault::ProgramError);
    EXPECT_EQ(m.bytes()[0], 1);     // the first half-word went in
    EXPECT_EQ(m.bytes()[2], 0xFF);  // the failed one did not
    EXPECT_EQ(m.programs, 2u);      // and nothing after it was tried
    EXPECT_EQ(m.sr(), 0u);          // PGERR written back to clear
    EXPECT_EQ(m.cr(), flash::kCrLock);
}

TEST(F103Flash, BusyThatNeverClearsIsAnIoErrorAndProtectedPagesAreReported) {
    test::f103::FlashControllerModel m;
    m.attach(nullptr);
    F103Flash flash = make_flash(m);
    m.stuck_busy = true;
    EXPECT_EQ(flash.erase(0), hal::FlashStatus::IoError);
    EXPECT_EQ(flash.last_fault(), F103Flash::Fault::Busy);
    EXPECT_NE(m.cr() & flash::kCrLock, 0u);

    test::f103::FlashControllerModel p;
    p.attach(nullptr);
    F103Flash protected_flash = make_flash(p);
    p.protected_pages.insert(2);
    EXPECT_EQ(protected_flash.erase(2), hal::FlashStatus::IoError);
    EXPECT_EQ(protected_flash.last_fault(), F103Flash::Fault::WriteProtect);
    EXPECT_EQ(p.sr(), 0u);
}

TEST(F103Flash, TheSpoolRunsOnIt) {
    test::f103::FlashControllerModel m;
    m.attach(nullptr);
    F103Flash flash = make_flash(m);
    test::f103::AdcModel adc_model;  // unused: a fixed-seed random is enough here
    SeedRandom random;
    random.stir(42);
    spool::FlashSpool spool(flash, random);
    ASSERT_EQ(spool.mount(), reader::StoreStatus::Ok);
    std::uint64_t seq = 0;
    protocol::Record record{};
    record.channel = 0;
    record.value = 21.5;
    for (int i = 0; i < 40; ++i) ASSERT_EQ(spool.append(record, &seq), reader::StoreStatus::Ok);
    spool::FlashSpool again(flash, random);
    ASSERT_EQ(again.mount(), reader::StoreStatus::Ok);
    EXPECT_EQ(again.held(), 40u);
    EXPECT_TRUE(m.errors.empty()) << m.errors.front();
}

TEST(F103Usart, StartProgramsBrrAndCr1) {
    test::f103::UsartModel m;
    std::vector<Access> log;
    test::f103::Attachment a(m, m.base(), 28, &log);
    F103Usart usart;
    ASSERT_EQ(usart.start({m.base(), 32'000'000, 115'200}), UsartStatus::Ok);
    EXPECT_EQ(m.reg(usart::kBrr), 0x116u);  // 32 MHz / 115200 = 277.8: mantissa 17, fraction 6
    EXPECT_EQ(m.reg(usart::kCr1), usart::kCr1Ue | usart::kCr1Te | usart::kCr1Re | usart::kCr1Rxneie);
    EXPECT_EQ(m.reg(usart::kCr2), 0u);
    EXPECT_EQ(F103Usart::brr_for(32'000'000, 9600), 3333u);
    EXPECT_EQ(usart.start({m.base(), 32'000'000, 0}), UsartStatus::InvalidArgument);
    EXPECT_EQ(usart.start({m.base(), 32'000'000, 4'000'000}), UsartStatus::InvalidArgument);
    EXPECT_TRUE(m.errors.empty()) << m.errors.front();
}

TEST(F103Usart, RxInterruptFillsTheRingAndCountsOverrunAndFull) {
    test::f103::UsartModel m;
    test::f103::Attachment a(m, m.base(), 28);
    static F103Usart usart;
    ASSERT_EQ(usart.start({m.base(), 32'000'000, 115'200}), UsartStatus::Ok);
    for (std::uint8_t b : {'a', 'b', 'c'}) {
        m.receive(b);
        usart.on_interrupt();
    }
    std::uint8_t out[8] = {};
    ASSERT_EQ(usart.read(out, sizeof out), 3u);
    EXPECT_EQ(std::memcmp(out, "abc", 3), 0);
    m.receive('x');
    m.receive('y');  // before the interrupt: overrun, 'y' lost
    EXPECT_NE(m.reg(usart::kSr) & usart::kSrOre, 0u);
    usart.on_interrupt();
    EXPECT_EQ(m.reg(usart::kSr) & (usart::kSrOre | usart::kSrRxne), 0u);  // SR then DR cleared both
    EXPECT_EQ(usart.counters().rx_overruns, 1u);
    ASSERT_EQ(usart.read(out, sizeof out), 1u);
    EXPECT_EQ(out[0], 'x');
    for (std::size_t i = 0; i < F103Usart::kRxCapacity + 1; ++i) {
        m.receive(static_cast<std::uint8_t>(i));
        usart.on_interrupt();
    }
    EXPECT_EQ(usart.counters().rx_dropped, 1u);
    EXPECT_EQ(usart.rx_available(), F103Usart::kRxCapacity);
}

TEST(F103Usart, TxIsDrivenByTheTxeInterrupt) {
    test::f103::UsartModel m;
    test::f103::Attachment a(m, m.base(), 28);
    static F103Usart usart;
    ASSERT_EQ(usart.start({m.base(), 32'000'000, 115'200}), UsartStatus::Ok);
    const std::uint8_t text[3] = {'o', 'k', '\n'};
    ASSERT_EQ(usart.write(text, 3), 3u);
    EXPECT_NE(m.reg(usart::kCr1) & usart::kCr1Txeie, 0u);
    EXPECT_TRUE(m.sent.empty());  // nothing until the interrupt
    for (int i = 0; i < 4; ++i) usart.on_interrupt();
    EXPECT_EQ(m.sent, std::vector<std::uint8_t>(text, text + 3));
    EXPECT_EQ(m.reg(usart::kCr1) & usart::kCr1Txeie, 0u);
    EXPECT_TRUE(usart.tx_idle());
    EXPECT_TRUE(m.errors.empty()) << m.errors.front();
}

const char* adc_name(std::uintptr_t o) {
    switch (o) {
        case adc::kSr: return "SR";
        case adc::kCr1: return "CR1";
        case adc::kCr2: return "CR2";
        case adc::kSmpr1: return "SMPR1";
        case adc::kSqr1: return "SQR1";
        case adc::kSqr3: return "SQR3";
        case adc::kDr: return "DR";
        default: return "?";
    }
}

TEST(F103Adc, StartCalibratesInOrderAndSetsTsvrefeAndSampleTime) {
    test::f103::AdcModel m;
    std::vector<Access> log;
    test::f103::Attachment a(m, m.base(), 80, &log);
    F103Adc adc;
    ASSERT_EQ(adc.start({m.base(), 64'000'000, 100}), AdcStatus::Ok);
    const std::string expected =
        "W32 CR1 0x0\nW32 CR2 0x1e0001\ndelay 128\nR32 CR2 0x1e0001\nW32 CR2 0x1e0009\nR32 CR2 0x1e0009\n"
        "R32 CR2 0x1e0001\nR32 CR2 0x1e0001\nW32 CR2 0x1e0005\nR32 CR2 0x1e0005\nR32 CR2 0x1e0001\n"
        "W32 CR2 0x9e0001\nW32 SMPR1 0xfc0000\nW32 SQR1 0x0\ndelay 640\n";
    EXPECT_EQ(test::f103::describe(log, adc_name), expected);
    EXPECT_TRUE(m.errors.empty()) << m.errors.front();
}

TEST(F103Adc, ConversionsGiveTheSensorsInTheirUnits) {
    test::f103::AdcModel m;
    test::f103::Attachment a(m, m.base(), 80);
    F103Adc adc;
    ASSERT_EQ(adc.start({m.base(), 64'000'000, 100}), AdcStatus::Ok);
    m.value[16] = 1700;
    m.value[17] = 1490;
    std::uint16_t raw = 0;
    ASSERT_EQ(adc.convert(17, &raw), AdcStatus::Ok);
    EXPECT_EQ(raw, 1490);
    EXPECT_EQ(m.reg(adc::kSqr3), 17u);
    InternalSensors sensors(adc);
    double value = 0;
    ASSERT_EQ(sensors.read(InternalSensors::kSupply, &value), hal::SensorStatus::Ok);
    EXPECT_NEAR(value, 3.2980, 1e-3);  // 1.20 V * 4095 / 1490
    ASSERT_EQ(sensors.read(InternalSensors::kTemperature, &value), hal::SensorStatus::Ok);
    EXPECT_NEAR(value, 39.156, 1e-2);  // (1.43 - 1700 * 1.2 / 1490) / 0.0043 + 25
    EXPECT_EQ(sensors.read(2, &value), hal::SensorStatus::NoSuchChannel);
    EXPECT_TRUE(m.errors.empty()) << m.errors.front();
}

TEST(F103Adc, TimeoutsAreReported) {
    test::f103::AdcModel m;
    test::f103::Attachment a(m, m.base(), 80);
    F103Adc adc;
    m.stuck_calibration = true;
    EXPECT_EQ(adc.start({m.base(), 64'000'000, 100}), AdcStatus::CalibrationTimeout);
    std::uint16_t raw = 0;
    EXPECT_EQ(adc.convert(16, &raw), AdcStatus::NotStarted);
    m.stuck_calibration = false;
    ASSERT_EQ(adc.start({m.base(), 64'000'000, 100}), AdcStatus::Ok);
    m.stuck_conversion = true;
    EXPECT_EQ(adc.convert(16, &raw), AdcStatus::ConversionTimeout);
    InternalSensors sensors(adc);
    double value = 0;
    EXPECT_EQ(sensors.read(0, &value), hal::SensorStatus::Error);
}

TEST(SeedRandom, UniqueIdAndNoiseBothChangeTheStream) {
    test::f103::AdcModel m;
    test::f103::Attachment a(m, m.base(), 80);
    F103Adc adc;
    ASSERT_EQ(adc.start({m.base(), 64'000'000, 100}), AdcStatus::Ok);
    std::uint32_t id_a[3] = {1, 2, 3};
    std::uint32_t id_b[3] = {1, 2, 4};
    SeedRandom r1, r2, r3;
    ASSERT_TRUE(r1.seed(reinterpret_cast<std::uintptr_t>(id_a), adc));
    ASSERT_TRUE(r2.seed(reinterpret_cast<std::uintptr_t>(id_b), adc));
    m.value[16] = 1;  // other noise
    ASSERT_TRUE(r3.seed(reinterpret_cast<std::uintptr_t>(id_a), adc));
    const std::uint64_t v1 = r1.next_u64();
    EXPECT_NE(v1, r2.next_u64());
    EXPECT_NE(v1, r3.next_u64());
    EXPECT_EQ(m.conversions, 3 * SeedRandom::kNoiseConversions);
}

}  // namespace
