// Code that must run while the flash is busy. During a page erase (20 to 40 ms,
// DS5319 Table 28) or a half-word program the flash interface stalls every
// fetch from flash (PM0075 §2.3.2), so an interrupt handler in flash would not
// run and USART2 would overrun. What runs meanwhile (the vector table copy,
// the USART2 and SysTick handlers, the flash driver's start-and-wait steps)
// is placed in .ramfunc, which the linker script copies to RAM with .data.
// On the host it is just a named section.
#pragma once

#define FIELDLINK_F103_RAMFUNC [[gnu::section(".ramfunc"), gnu::noinline]]
