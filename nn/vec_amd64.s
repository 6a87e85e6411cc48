//go:build amd64 && !purego

#include "textflag.h"

// func addToAVX(dst, src *float32, n int)
//
// dst[i] += src[i] for i < n, n a multiple of 8, with AVX.
TEXT ·addToAVX(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ   done
	CMPQ CX, $4
	JB   tail
loop4:
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	VADDPS (SI), Y0, Y0
	VADDPS 32(SI), Y1, Y1
	VADDPS 64(SI), Y2, Y2
	VADDPS 96(SI), Y3, Y3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, DI
	ADDQ $128, SI
	SUBQ $4, CX
	CMPQ CX, $4
	JAE  loop4
	TESTQ CX, CX
	JZ   done
tail:
	VMOVUPS (DI), Y0
	VADDPS (SI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	DECQ CX
	JNZ  tail
done:
	VZEROUPPER
	RET

// func reluAVX(y, x *float32, n int)
//
// y[i] = x[i] with its bits cleared when the sign bit is set, for i < n, n a multiple of 8
// (the bitwise form of the Go loop in unaryRun).
TEXT ·reluAVX(SB), NOSPLIT, $0-24
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ   reludone
reluloop:
	VMOVDQU (SI), Y0
	VPSRAD  $31, Y0, Y1
	VPANDN  Y0, Y1, Y0
	VMOVDQU Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  reluloop
reludone:
	VZEROUPPER
	RET

// func reluBackAVX(ga, gr, y *float32, n int)
//
// ga[i] += gr[i] where the bits of y[i] are not all zero, else ga[i] += +0, for i < n, n a
// multiple of 8 (the bitwise form of the Go loop in unaryBack).
TEXT ·reluBackAVX(SB), NOSPLIT, $0-32
	MOVQ ga+0(FP), DI
	MOVQ gr+8(FP), SI
	MOVQ y+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	JZ   rbdone
	VPXOR Y3, Y3, Y3
rbloop:
	VMOVDQU (DX), Y0
	VPCMPEQD Y3, Y0, Y0
	VMOVDQU (SI), Y1
	VPANDN  Y1, Y0, Y1
	VADDPS  (DI), Y1, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, DX
	DECQ CX
	JNZ  rbloop
rbdone:
	VZEROUPPER
	RET

// func reluBackSetAVX(ga, gr, y *float32, n int)
//
// ga[i] = gr[i] where the bits of y[i] are not all zero, else +0, for i < n, n a multiple
// of 8 (reluBackAVX for a fresh gradient buffer).
TEXT ·reluBackSetAVX(SB), NOSPLIT, $0-32
	MOVQ ga+0(FP), DI
	MOVQ gr+8(FP), SI
	MOVQ y+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	JZ   rsdone
	VPXOR Y3, Y3, Y3
rsloop:
	VMOVDQU (DX), Y0
	VPCMPEQD Y3, Y0, Y0
	VMOVDQU (SI), Y1
	VPANDN  Y1, Y0, Y1
	VMOVDQU Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, DX
	DECQ CX
	JNZ  rsloop
rsdone:
	VZEROUPPER
	RET

// func sum8AVX(x *float32, n int, s *[8]float32)
//
// s[j] += x[i] for i < n with i mod 8 = j, in order of i (n a multiple of 8): sum32's eight
// partial sums, one vector lane each.
TEXT ·sum8AVX(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ s+16(FP), DI
	VMOVUPS (DI), Y0
	SHRQ $3, CX
	JZ   sdone
sloop:
	VADDPS (SI), Y0, Y0
	ADDQ $32, SI
	DECQ CX
	JNZ  sloop
sdone:
	VMOVUPS Y0, (DI)
	VZEROUPPER
	RET
